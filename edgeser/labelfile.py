"""Reading a labels CSV (written by ``edgeser label`` or by hand): every row checked, every error one line.

A row is refused, naming the file and the line, when a number is not finite, ``start_s`` is negative,
``duration_s`` is not in (0, :data:`MAX_DURATION_S`], or (when the audio is checked) the window starts at
or past the end of its audio file. The text follows :mod:`edgeser.userfiles`' encoding rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .metrics import DIMENSIONS
from .userfiles import audio_seconds, printable, read_csv_rows

__all__ = ["LabelTable", "read_labels", "REQUIRED_COLUMNS", "MAX_DURATION_S"]

REQUIRED_COLUMNS = ("file", "start_s", "duration_s", *DIMENSIONS)
"""Columns a labels CSV must have for distillation."""
MAX_DURATION_S = 60.0
"""Longest window a labels row may give, in seconds (distillation trains on windows this long at most)."""


@dataclass
class LabelTable:
    """A labels CSV, validated: one entry per labelled window."""

    path: Path
    """The CSV file."""
    files: list[Path]
    """Audio file of each window (resolved against the CSV's folder)."""
    speakers: list[str]
    """Speaker of each window ('' when unknown)."""
    start_s: np.ndarray
    """Window start in seconds, (N,)."""
    duration_s: np.ndarray
    """Window length in seconds, (N,)."""
    targets: np.ndarray
    """Teacher labels (N, 3): arousal, dominance, valence."""
    sha256: list[str]
    """Audio hash at labelling time ('' when the CSV has no sha256 column)."""
    teacher: str
    """Teacher identity ('' when unknown or mixed)."""

    def __len__(self) -> int:
        return len(self.files)


def _number(row: dict[str, str], key: str, line: int, path: Path) -> float:
    text = row.get(key, "").strip()
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"line {line}: {key} is not a number ({printable(text)})", path=path) from None
    if not math.isfinite(value):
        raise InputError(f"line {line}: {key} is {text} (labels must be finite numbers)", path=path)
    return value


def _check_window(start: float, duration: float, line: int, path: Path) -> None:
    if start < 0:
        raise InputError(f"line {line}: start_s must be 0 or more, got {start:g}", path=path)
    if duration <= 0:
        raise InputError(f"line {line}: duration_s must be more than 0, got {duration:g}", path=path)
    if duration > MAX_DURATION_S:
        raise InputError(f"line {line}: duration_s must be at most {MAX_DURATION_S:g} s, got {duration:g}", path=path)


def _audio_file(row: dict[str, str], line: int, path: Path, check: bool) -> Path:
    name = row.get("file", "")
    if not name.strip():
        raise InputError(f"line {line}: the file column is empty", path=path)
    f = Path(name)
    f = f if f.is_absolute() else path.parent / f
    if not check:
        return f
    try:
        exists = f.is_file()
    except OSError as exc:  # e.g. a name too long for the file system
        raise InputError(f"line {line}: audio file {printable(str(f))} cannot be read ({exc.strerror})",
                         path=path) from None
    if not exists:
        raise InputError(f"line {line}: audio file {printable(str(f))} is missing (moved or deleted since "
                         "labelling?)", path=path)
    return f


def _seconds(audio: Path, line: int, path: Path) -> float:
    try:
        return audio_seconds(audio)
    except InputError as exc:
        raise InputError(f"line {line}: {exc.message}", path=path) from None


def read_labels(path: str | Path, *, check_audio: bool = True) -> LabelTable:
    """Read and validate a labels CSV written by :func:`edgeser.label.label` (or by hand with the same columns).

    Args:
        path: the CSV; relative audio paths are resolved against its folder.
        check_audio: fail when a labelled audio file no longer exists, or is shorter than a row's start.

    Raises:
        InputError: the file is missing, empty or not in an accepted encoding, columns are missing, a value is
            not a finite number or out of range (see the module docstring), or (with ``check_audio``) an audio
            file has disappeared or is unreadable.
    """
    path = Path(path)
    table = read_csv_rows(path, required=REQUIRED_COLUMNS, what="labels file", hint="write it with `edgeser label`")
    if not table.rows:
        raise InputError("labels file has no rows", path=path)
    files, numbers, lengths = [], [], {}
    for line, row in zip(table.lines, table.rows, strict=True):
        f = _audio_file(row, line, path, check_audio)
        values = [_number(row, k, line, path) for k in ("start_s", "duration_s", *DIMENSIONS)]
        _check_window(values[0], values[1], line, path)
        if check_audio:
            if f not in lengths:
                lengths[f] = _seconds(f, line, path)
            if values[0] >= lengths[f]:
                raise InputError(f"line {line}: start_s {printable(row['start_s'].strip())} is past the end of "
                                 f"{printable(f.name)} ({lengths[f]:.3f} s)", path=path)
        files.append(f)
        numbers.append(values)
    values = np.asarray(numbers, dtype=np.float64)
    teachers = {row.get("teacher", "") for row in table.rows}
    return LabelTable(
        path=path,
        files=files,
        speakers=[row.get("speaker", "") for row in table.rows],
        start_s=values[:, 0],
        duration_s=values[:, 1],
        targets=values[:, 2:].astype(np.float32),
        sha256=[row.get("sha256", "") for row in table.rows],
        teacher=teachers.pop() if len(teachers) == 1 else "",
    )
