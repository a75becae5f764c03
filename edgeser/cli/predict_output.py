"""What ``edgeser predict`` prints: a rich table on a terminal, plain lines into a pipe or file, JSON lines.

On a terminal the results are one table, printed when the batch ends, with a footnote naming the scale
and the bands. Into a pipe or a file (where a table would wrap at 80 columns and appear only at the end)
the same columns are plain aligned lines, one per file as it finishes, with the same footnote at the end.
``--json`` prints one JSON object per file and no footnote: the machine format, like ``--csv``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..runtime.spec import DIMENSIONS

if TYPE_CHECKING:
    from ..api import Model, Result

__all__ = ["Output", "open_output", "json_line", "footnote", "NAME_WIDTH"]

NAME_WIDTH = 40
"""Width of the file column in plain lines (longer names push the values right)."""
VALUE_WIDTH = 17
"""Width of one dimension's column in plain lines: the value and its word."""
WORD_STYLES = ("cyan", "", "magenta")
"""Style of the low, middle and high word in the table."""


class Output(Protocol):
    """Receives each file's result, then ``close`` once."""

    def add(self, name: str, result: Result) -> None:
        """Show one file's result."""
        ...

    def close(self) -> None:
        """Finish: print the table and the footnote (where they come at the end)."""
        ...


def json_line(name: str, result: Result, *, per_window: bool) -> str:
    """One ``--json`` line: the runner's fields (file, arousal, dominance, valence, windows) plus ``bands``,
    and with ``per_window`` a ``per_window`` list (start_s and the three values of each window)."""
    entry: dict[str, Any] = {"file": name, **result.to_dict()}
    if per_window:
        entry["per_window"] = [{"start_s": round(float(s), 4), **dict(zip(DIMENSIONS, map(float, w), strict=True))}
                               for s, w in zip(result.starts_s, result.per_window, strict=True)]
    return json.dumps(entry)


def footnote(model: Model) -> list[str]:
    """The lines under the results: the scale, each dimension's bands, and where the bands come from."""
    bands = model.bands
    width = max(map(len, DIMENSIONS))
    words = [f"{'Words:' if i == 0 else '':<7}{dim:<{width}}  {bands.describe(dim)}"
             for i, dim in enumerate(DIMENSIONS)]
    lines = ["Values: 0..1, trained towards the teacher's scale; values slightly outside are possible.", *words,
             f"Bands {bands.source}; see docs/outputs.md."]
    if not model.bands_measured:
        lines.append(f"The bands were not measured on this model ({model.name}): its scale may differ, so read "
                     "the words loosely.")
    return lines


class _Json:
    def __init__(self, console: Console, *, per_window: bool) -> None:
        self.console, self.per_window = console, per_window

    def add(self, name: str, result: Result) -> None:
        self.console.out(json_line(name, result, per_window=self.per_window), highlight=False)

    def close(self) -> None:
        pass


def _cells(model: Model, values: Any) -> list[str]:
    return [f"{float(v):6.3f} {model.word(d, float(v)):<10}" for d, v in zip(DIMENSIONS, values, strict=True)]


class _Plain:
    """Aligned lines, one per file as it finishes (nothing wraps), the footnote at the end."""

    def __init__(self, console: Console, model: Model, *, per_window: bool) -> None:
        self.console, self.model, self.per_window = console, model, per_window
        header = f"{'file':<{NAME_WIDTH}} " + "".join(f"{d:<{VALUE_WIDTH}} " for d in DIMENSIONS) + "windows"
        self.console.out(header, highlight=False)

    def add(self, name: str, result: Result) -> None:
        self.console.out(f"{name:<{NAME_WIDTH}} " + " ".join(_cells(self.model, result.adv)) + f" {result.windows:>7}",
                         highlight=False)
        if self.per_window and result.windows > 1:
            for start, row in zip(result.starts_s, result.per_window, strict=True):
                at = f"  @{float(start):7.2f} s"
                self.console.out(f"{at:<{NAME_WIDTH}} " + " ".join(_cells(self.model, row)).rstrip(), highlight=False)

    def close(self) -> None:
        self.console.out("\n" + "\n".join(footnote(self.model)), highlight=False)


class _Table:
    """A rich table printed when the batch ends, with the footnote under it."""

    def __init__(self, console: Console, model: Model, *, per_window: bool) -> None:
        self.console, self.model, self.per_window = console, model, per_window
        self.table = Table(title=f"edgeser predict · {model.name}", title_justify="left", header_style="bold")
        self.table.add_column("file", overflow="fold")
        for dim in DIMENSIONS:
            self.table.add_column(dim, no_wrap=True)
        self.table.add_column("windows", justify="right")

    def _cells(self, values: Any) -> list[Text]:
        cells = []
        for dim, v in zip(DIMENSIONS, values, strict=True):
            word = self.model.word(dim, float(v))
            words = self.model.bands.words[dim]
            style = WORD_STYLES[words.index(word)] if word in words else ""
            cells.append(Text.assemble(f"{float(v):.3f} ", (word, style)))
        return cells

    def add(self, name: str, result: Result) -> None:
        self.table.add_row(Text(name), *self._cells(result.adv), str(result.windows))
        if self.per_window and result.windows > 1:
            for start, row in zip(result.starts_s, result.per_window, strict=True):
                self.table.add_row(Text(f"  @ {float(start):.2f} s", style="dim"), *self._cells(row), "")

    def close(self) -> None:
        if self.table.row_count:
            self.console.print(self.table)
        self.console.print(Text("\n".join(footnote(self.model)), style="dim"))


def open_output(console: Console, model: Model, *, json_lines: bool, per_window: bool) -> Output:
    """JSON lines, the rich table (``console`` is a terminal) or plain lines (a pipe or a file)."""
    if json_lines:
        return _Json(console, per_window=per_window)
    if console.is_terminal:
        return _Table(console, model, per_window=per_window)
    return _Plain(console, model, per_window=per_window)
