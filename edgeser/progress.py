"""Progress bars for long work (rich, on stderr), with a silent twin for library use and tests.

The one progress system of edgeser: ``build``, ``label`` and ``distill`` report through a
:class:`Reporter`, and only the command line decides whether bars are shown (``--quiet`` hides them).
Each bar carries a short ``info`` text beside its count (files per second, the running loss, the
validation CCC of the last epoch).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["Reporter", "progress_bars", "reporting", "silent"]


class Reporter(Protocol):
    """Where long work reports how far it got: one task (a bar) per stage."""

    def start(self, description: str, total: int | None = None, *, info: str = "") -> int:
        """Open a bar of ``total`` steps (None: unknown) and return its id."""
        ...

    def advance(self, task: int, amount: int = 1, *, info: str | None = None) -> None:
        """Count ``amount`` more steps done; replace the bar's info text when ``info`` is given."""
        ...

    def note(self, task: int, info: str) -> None:
        """Replace the bar's info text without counting a step."""
        ...

    def finish(self, task: int) -> None:
        """Show the bar as complete."""
        ...


class _Rich:
    def __init__(self, progress: Progress) -> None:
        self.p = progress

    def start(self, description: str, total: int | None = None, *, info: str = "") -> int:
        return int(self.p.add_task(description, total=total, info=info))

    def advance(self, task: int, amount: int = 1, *, info: str | None = None) -> None:
        extra = {} if info is None else {"info": info}
        self.p.update(task, advance=amount, **extra)  # type: ignore[arg-type]

    def note(self, task: int, info: str) -> None:
        self.p.update(task, info=info)  # type: ignore[arg-type]

    def finish(self, task: int) -> None:
        t = self.p.tasks[task]
        self.p.update(task, total=t.total or 1, completed=t.total or 1)  # type: ignore[arg-type]


class _Silent:
    def start(self, description: str, total: int | None = None, *, info: str = "") -> int:
        return 0

    def advance(self, task: int, amount: int = 1, *, info: str | None = None) -> None:
        pass

    def note(self, task: int, info: str) -> None:
        pass

    def finish(self, task: int) -> None:
        pass


silent: Reporter = _Silent()


@contextmanager
def progress_bars(console: Console | None = None) -> Iterator[Reporter]:
    """A rich progress display (on stderr by default) for the duration of the block."""
    progress = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console or Console(stderr=True))
    with progress:
        yield _Rich(progress)


@contextmanager
def reporting(enabled: bool, console: Console | None = None) -> Iterator[Reporter]:
    """:func:`progress_bars` when ``enabled`` (a command without ``--quiet``), else :data:`silent`."""
    if not enabled:
        yield silent
        return
    with progress_bars(console) as bars:
        yield bars
