"""psl-gym: simulate and schedule parallel split learning over wireless edge networks."""

__version__ = "0.1.0"
