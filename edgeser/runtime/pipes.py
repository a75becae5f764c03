"""A closed standard output (``... | head -1``) ends a command quietly: it is not an error for the producer.

Python ignores SIGPIPE, so a write to a pipe whose reader has gone raises BrokenPipeError. A command
that prints results stops there with exit status 0 (its reader asked for no more), and points its
standard output at the null device so that the interpreter's last flush does not fail again and print
"Exception ignored ... BrokenPipeError" (the recipe in Python's documentation of the signal module).
Needs nothing outside the standard library (this folder is copied into bundles).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TypeVar

__all__ = ["silence_stdout", "quiet_when_stdout_closes", "EXIT_STDOUT_CLOSED"]

EXIT_STDOUT_CLOSED = 0
"""Exit status of a command whose standard output was closed by its reader."""

F = TypeVar("F", bound=Callable[..., int])


def silence_stdout() -> None:
    """Point the file descriptor of ``sys.stdout`` at the null device (nothing when it has none)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # an in-memory stream (a test's capture): nothing to flush
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def quiet_when_stdout_closes(main: F) -> F:
    """Decorate a ``main`` that returns an exit status: BrokenPipeError returns :data:`EXIT_STDOUT_CLOSED`."""

    @functools.wraps(main)
    def wrapper(*args: object, **kwargs: object) -> int:
        try:
            return main(*args, **kwargs)
        except BrokenPipeError:
            silence_stdout()
            return EXIT_STDOUT_CLOSED

    return wrapper  # type: ignore[return-value]
