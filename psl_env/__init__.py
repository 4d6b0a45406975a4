"""psl-gym: simulate and schedule parallel split learning over wireless edge networks."""

__version__ = "0.1.0"

from psl_env.envs.registration import register_envs as _register_envs  # noqa: E402

_register_envs()
