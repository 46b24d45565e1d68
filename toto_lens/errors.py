"""Errors that reach a user as one line: the CLI prints `error: <message>` and exits with code 2.

Anything else that escapes is a bug and keeps its traceback.
"""


class TotoLensError(Exception):
    """An expected failure with a message that says what is wrong and how to fix it."""

    exit_code = 2


class ConfigError(TotoLensError, ValueError):
    """A model or run configuration that cannot be built."""


class CheckpointError(TotoLensError):
    """A checkpoint that cannot be found, read or written."""
