"""The one exception type the project raises for bad input.

A :class:`CaeError` carries a message meant for the user: it names the file or the
params key at fault and says what to do. Stage entry points and the CLI print it as
one line and exit non-zero; anything else that escapes is a bug and keeps its
traceback.
"""


class CaeError(Exception):
    """Bad input, a missing prerequisite or an unreachable source, explained for a user."""


class ParamsError(CaeError):
    """params.yaml (or a -S override) does not satisfy the schema."""


class DataError(CaeError):
    """A data file or source is missing, unreadable or fails verification."""
