"""Reading a labels file (written by ``edgeser label`` or by hand): every row checked, every error one line.

A labels file is a CSV, or a Parquet file (name ending in ``.parquet``; needs pyarrow, ``pip install
'edgeser[ray]'``) with the same columns, numbers as numeric columns. A row is refused, naming the file and
the line (CSV) or row (Parquet), when a number is missing or not finite, ``start_s`` is negative,
``duration_s`` is not in (0, :data:`MAX_DURATION_S`], or (when the audio is checked) the window starts at
or past the end of its audio file. CSV text follows :mod:`edgeser.userfiles`' encoding rule.
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


def _number(row: dict[str, str], key: str, at: str, path: Path) -> float:
    text = row.get(key, "").strip()
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{at}: {key} is not a number ({printable(text)})", path=path) from None
    if not math.isfinite(value):
        raise InputError(f"{at}: {key} is {text} (labels must be finite numbers)", path=path)
    return value


def _check_window(start: float, duration: float, at: str, path: Path) -> None:
    if start < 0:
        raise InputError(f"{at}: start_s must be 0 or more, got {start:g}", path=path)
    if duration <= 0:
        raise InputError(f"{at}: duration_s must be more than 0, got {duration:g}", path=path)
    if duration > MAX_DURATION_S:
        raise InputError(f"{at}: duration_s must be at most {MAX_DURATION_S:g} s, got {duration:g}", path=path)


def _audio_file(row: dict[str, str], at: str, path: Path, check: bool) -> Path:
    name = row.get("file", "")
    if not name.strip():
        raise InputError(f"{at}: the file column is empty", path=path)
    f = Path(name)
    f = f if f.is_absolute() else path.parent / f
    if not check:
        return f
    try:
        exists = f.is_file()
    except OSError as exc:  # e.g. a name too long for the file system
        raise InputError(f"{at}: audio file {printable(str(f))} cannot be read ({exc.strerror})",
                         path=path) from None
    if not exists:
        raise InputError(f"{at}: audio file {printable(str(f))} is missing (moved or deleted since "
                         "labelling?)", path=path)
    return f


def _seconds(audio: Path, at: str, path: Path) -> float:
    try:
        return audio_seconds(audio)
    except InputError as exc:
        raise InputError(f"{at}: {exc.message}", path=path) from None


def _finish(path: Path, files: list[Path], where: list[str], values: np.ndarray, texts: dict[str, list[str]],
            check_audio: bool, starts: list[str]) -> LabelTable:
    """Check every window against its audio (with ``check_audio``) and build the table."""
    lengths: dict[Path, float] = {}
    for i, (f, at) in enumerate(zip(files, where, strict=True)):
        _check_window(values[i, 0], values[i, 1], at, path)
        if check_audio:
            if f not in lengths:
                lengths[f] = _seconds(f, at, path)
            if values[i, 0] >= lengths[f]:
                raise InputError(f"{at}: start_s {printable(starts[i])} is past the end of "
                                 f"{printable(f.name)} ({lengths[f]:.3f} s)", path=path)
    teachers = set(texts["teacher"])
    return LabelTable(
        path=path,
        files=files,
        speakers=texts["speaker"],
        start_s=values[:, 0],
        duration_s=values[:, 1],
        targets=values[:, 2:].astype(np.float32),
        sha256=texts["sha256"],
        teacher=teachers.pop() if len(teachers) == 1 else "",
    )


def _read_csv(path: Path, check_audio: bool) -> LabelTable:
    table = read_csv_rows(path, required=REQUIRED_COLUMNS, what="labels file", hint="write it with `edgeser label`")
    if not table.rows:
        raise InputError("labels file has no rows", path=path)
    files, numbers, where = [], [], []
    for line, row in zip(table.lines, table.rows, strict=True):
        at = f"line {line}"
        files.append(_audio_file(row, at, path, check_audio))
        numbers.append([_number(row, k, at, path) for k in ("start_s", "duration_s", *DIMENSIONS)])
        where.append(at)
    texts = {k: [row.get(k, "") for row in table.rows] for k in ("speaker", "sha256", "teacher")}
    starts = [row["start_s"].strip() for row in table.rows]
    return _finish(path, files, where, np.asarray(numbers, dtype=np.float64), texts, check_audio, starts)


def _read_parquet(path: Path, check_audio: bool) -> LabelTable:
    from .label.manifest import pyarrow_module

    pa = pyarrow_module(path, "labels file")
    try:
        table = pa.parquet.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"unreadable Parquet labels file ({str(exc).splitlines()[0][:160]})", path=path) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(f"labels file lacks column(s) {', '.join(missing)} (has: "
                         f"{', '.join(table.column_names) or 'none'}); write it with `edgeser label`", path=path)
    if not table.num_rows:
        raise InputError("labels file has no rows", path=path)
    columns = []
    for key in ("start_s", "duration_s", *DIMENSIONS):
        column = table.column(key)
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            raise InputError(f"column {key} must hold numbers, got {column.type}", path=path)
        data = column.to_numpy(zero_copy_only=False).astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(data))
        if len(bad):
            shown = "empty" if column.is_null()[int(bad[0])].as_py() else f"{data[bad[0]]}"
            raise InputError(f"row {bad[0] + 1}: {key} is {shown} (labels must be finite numbers)", path=path)
        columns.append(data)
    texts: dict[str, list[str]] = {}
    for key in ("file", "speaker", "sha256", "teacher"):
        if key in table.column_names and not (pa.types.is_string(table.column(key).type)
                                              or pa.types.is_large_string(table.column(key).type)):
            raise InputError(f"column {key} must hold text, got {table.column(key).type}", path=path)
        raw = table.column(key).to_pylist() if key in table.column_names else [""] * table.num_rows
        texts[key] = [v or "" for v in raw]
    where = [f"row {i + 1}" for i in range(table.num_rows)]
    files = [_audio_file({"file": f}, at, path, check_audio) for f, at in zip(texts["file"], where, strict=True)]
    values = np.stack(columns, axis=1)
    return _finish(path, files, where, values, texts, check_audio, [f"{v:g}" for v in values[:, 0]])


def read_labels(path: str | Path, *, check_audio: bool = True) -> LabelTable:
    """Read and validate a labels file written by :func:`edgeser.label.label` (or by hand with the same columns).

    Args:
        path: the CSV, or a ``.parquet`` file; relative audio paths are resolved against its folder.
        check_audio: fail when a labelled audio file no longer exists, or is shorter than a row's start.

    Raises:
        InputError: the file is missing, empty or not in an accepted encoding, columns are missing, a value is
            not a finite number or out of range (see the module docstring), (with ``check_audio``) an audio
            file has disappeared or is unreadable, or a Parquet file is read without pyarrow installed.
    """
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        return _read_parquet(path, check_audio)
    return _read_csv(path, check_audio)
