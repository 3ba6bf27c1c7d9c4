"""The one exception type a user sees: the CLI prints its message as a single line and exits non-zero."""


class MixaugError(Exception):
    """A problem with the user's input, files or environment, worded for the user."""
