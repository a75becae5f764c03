"""Writing a labels CSV (read back by :mod:`edgeser.labelfile`): one row per window, written atomically."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..audio import AudioItem
from ..errors import OutputError
from ..fileio import replacing
from ..metrics import DIMENSIONS

__all__ = ["COLUMNS", "file_rows", "write_csv"]

COLUMNS = ("file", "speaker", "window", "start_s", "duration_s", *DIMENSIONS, "sha256", "teacher")
"""Columns of a labels CSV, in order."""


def _display_path(path: Path, out: Path) -> str:
    """Relative to the CSV's folder when the audio lies under it, else absolute (POSIX separators)."""
    path, base = path.resolve(), out.resolve().parent
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def file_rows(item: AudioItem, values: list[list[float]], sha: str, teacher: str, out: Path,
              window_s: float) -> list[list[Any]]:
    """CSV rows of one file: file, speaker, window, start_s, duration_s, A, D, V, sha256, teacher."""
    name, speaker = _display_path(item.path, out), item.speaker or ""
    return [[name, speaker, i, f"{v[0]:.4f}", f"{window_s:.4f}", *(f"{x:.6f}" for x in v[1:4]), sha, teacher]
            for i, v in enumerate(values)]


def write_csv(out: Path, rows: list[list[Any]]) -> None:
    """Write the header and ``rows`` to ``out`` through a temporary file.

    Raises:
        OutputError: the file cannot be written.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    try:
        with replacing(out, suffix=".csv") as tmp:
            tmp.write_text(buf.getvalue(), encoding="utf-8", newline="")
    except OSError as exc:
        raise OutputError(f"cannot write labels ({exc.strerror})", path=out) from None
