"""The exception and warning types a user sees: the CLI prints each as a single line.

MixaugError ends a run (exit code 2: bad input, usage or environment); MixaugWarning reports a problem
that the run worked around (an unusable decode cache, say) and goes on.
"""


class MixaugError(Exception):
    """A problem with the user's input, files or environment, worded for the user."""


class MixaugWarning(UserWarning):
    """Something the run worked around, worded for the user (the CLI prints it as one 'warning:' line)."""


def summary(exc: BaseException, limit: int = 200) -> str:
    """A library's exception as part of one line: whitespace folded, long texts cut, never empty."""
    text = " ".join(str(exc).split())
    return (text[:limit] + "...") if len(text) > limit else (text or type(exc).__name__)
