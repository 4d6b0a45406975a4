"""Errors the command line reports as one line with exit code 2."""


class UsageError(ValueError):
    """Bad input from the user: printed as one line, exit code 2, before anything is written."""
