"""One exception family. Each error carries its exit code and a one-line message.

Exit codes (documented in docs/exit-codes.md):

==== =====================================================================
code meaning
==== =====================================================================
0    success
1    unexpected internal error (a bug: please report it)
2    bad input: a missing, unreadable or invalid file, option or recipe
3    drift gate failed: the quantised model changed the predictions too much
4    export check failed: an exported model disagrees with its source
5    output problem: the output exists already or cannot be written
6    verification failed: a bundle file is missing, added or changed
130  interrupted (Ctrl-C)
==== =====================================================================
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "EdgeserError",
    "InputError",
    "DriftError",
    "ExportCheckError",
    "OutputError",
    "VerifyError",
    "one_line",
]


class EdgeserError(Exception):
    """Base class: a failure the user can act on, shown as one line."""

    exit_code: int = 1

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        text = f"{self.path}: {message}" if self.path is not None else message
        self.message = one_line(text)
        super().__init__(self.message)


def one_line(text: str) -> str:
    """``text`` with every character that would not print on one line (newline, tab, other controls) escaped,
    as Python writes it in a literal: an error stays one line whatever file name or key a user typed."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class InputError(EdgeserError):
    """A missing, unreadable or invalid input file, option or recipe."""

    exit_code = 2


class DriftError(EdgeserError):
    """The quantised model is over the recipe's drift budget."""

    exit_code = 3


class ExportCheckError(EdgeserError):
    """An exported model's output differs from its source past the tolerance."""

    exit_code = 4


class OutputError(EdgeserError):
    """The output path exists already or cannot be written."""

    exit_code = 5


class VerifyError(EdgeserError):
    """A bundle does not match its manifest."""

    exit_code = 6
