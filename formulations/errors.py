"""Errors raised for bad problem data.

Every validation failure is an :class:`InputError` whose message is one line
that names the offending field and says what was expected, e.g.::

    capacity: expected a non-negative finite array of shape (5, 7), got -3.0 at index (3, 1)

The CLI prints that line and exits with status 2; the Python API raises it.
"""

from __future__ import annotations


class InputError(ValueError):
    """Problem data that cannot be planned with, with a one-line reason.

    Parameters
    ----------
    field : str
        Name of the offending field (argument, column or file).
    message : str
        What was expected and what was found.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}")
