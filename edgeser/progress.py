"""Progress bars for long work (rich), with a silent twin for library use and tests."""

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

__all__ = ["Reporter", "progress_bars", "silent"]


class Reporter(Protocol):
    def start(self, description: str, total: int | None = None) -> int: ...
    def advance(self, task: int, amount: int = 1) -> None: ...
    def finish(self, task: int) -> None: ...


class _Rich:
    def __init__(self, progress: Progress) -> None:
        self.p = progress

    def start(self, description: str, total: int | None = None) -> int:
        return int(self.p.add_task(description, total=total))

    def advance(self, task: int, amount: int = 1) -> None:
        self.p.advance(task, amount)  # type: ignore[arg-type]

    def finish(self, task: int) -> None:
        t = self.p.tasks[task]
        self.p.update(task, total=t.total or 1, completed=t.total or 1)  # type: ignore[arg-type]


class _Silent:
    def start(self, description: str, total: int | None = None) -> int:
        return 0

    def advance(self, task: int, amount: int = 1) -> None:
        pass

    def finish(self, task: int) -> None:
        pass


silent: Reporter = _Silent()


@contextmanager
def progress_bars(console: Console | None = None) -> Iterator[Reporter]:
    """A rich progress display (on stderr by default) for the duration of the block."""
    progress = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=console or Console(stderr=True))
    with progress:
        yield _Rich(progress)
