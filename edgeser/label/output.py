"""Writing labels (read back by :mod:`edgeser.labelfile`): one row per window, streamed, written atomically.

``.parquet`` outputs are Parquet (``pip install 'edgeser[ray]'`` brings pyarrow), anything else CSV; both
have the columns :data:`COLUMNS` and the same numbers (start and duration rounded to 0.1 ms, labels to six
decimals). Rows go to a temporary file beside the output as they come, which is renamed onto it at the end.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from ..audio import AudioItem
from ..errors import OutputError
from ..fileio import replacing
from ..metrics import DIMENSIONS

__all__ = ["COLUMNS", "PARQUET_ROWS", "RowWriter", "file_rows", "writing", "is_parquet"]

COLUMNS = ("file", "speaker", "window", "start_s", "duration_s", *DIMENSIONS, "sha256", "teacher")
"""Columns of a labels file, in order."""
PARQUET_ROWS = 65_536
"""Rows per Parquet row group."""
_TIME_DECIMALS, _LABEL_DECIMALS = 4, 6


class RowWriter(Protocol):
    """Takes rows of :data:`COLUMNS` values."""

    def write(self, rows: list[list[Any]]) -> None: ...


def is_parquet(out: Path) -> bool:
    """True when ``out`` names a Parquet file."""
    return out.suffix.lower() == ".parquet"


def _display_path(path: Path, base: Path) -> str:
    """Relative to ``base`` (the output's resolved folder) when the audio lies under it, else absolute (POSIX)."""
    path = path.resolve()
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def file_rows(item: AudioItem, values: list[list[float]], sha: str, teacher: str, base: Path,
              window_s: float) -> list[list[Any]]:
    """Rows of one file: file, speaker, window, start_s, duration_s, A, D, V, sha256, teacher (numbers rounded)."""
    name, speaker, duration = _display_path(item.path, base), item.speaker or "", round(window_s, _TIME_DECIMALS)
    return [[name, speaker, i, round(v[0], _TIME_DECIMALS), duration,
             *(round(x, _LABEL_DECIMALS) for x in v[1:4]), sha, teacher] for i, v in enumerate(values)]


class _Csv:
    def __init__(self, fh: Any) -> None:
        self.writer = csv.writer(fh, lineterminator="\n")
        self.writer.writerow(COLUMNS)

    def write(self, rows: list[list[Any]]) -> None:
        self.writer.writerows(
            [r[0], r[1], r[2], f"{r[3]:.4f}", f"{r[4]:.4f}", f"{r[5]:.6f}", f"{r[6]:.6f}", f"{r[7]:.6f}", r[8], r[9]]
            for r in rows)


class _Parquet:
    def __init__(self, tmp: Path, out: Path) -> None:
        from .manifest import pyarrow_module

        pa = self.pa = pyarrow_module(out, "labels file")
        types = [pa.string(), pa.string(), pa.int64(), *[pa.float64()] * (2 + len(DIMENSIONS)), pa.string(),
                 pa.string()]
        self.schema = pa.schema(list(zip(COLUMNS, types, strict=True)))
        self.writer = pa.parquet.ParquetWriter(str(tmp), self.schema)
        self.buffer: list[list[Any]] = []

    def write(self, rows: list[list[Any]]) -> None:
        self.buffer.extend(rows)
        if len(self.buffer) >= PARQUET_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            columns = list(zip(*self.buffer, strict=True))
            self.writer.write_table(self.pa.Table.from_arrays(
                [self.pa.array(c, type=f.type) for c, f in zip(columns, self.schema, strict=True)],
                schema=self.schema))
            self.buffer = []

    def close(self) -> None:
        self.flush()
        self.writer.close()


@contextmanager
def writing(out: Path) -> Iterator[RowWriter]:
    """A writer of label rows into ``out``: replaced when the block ends, untouched if it raises.

    Raises:
        OutputError: the file cannot be written.
        InputError: Parquet was asked for and pyarrow is missing.
    """
    try:
        with replacing(out, suffix=out.suffix) as tmp:
            if is_parquet(out):
                writer = _Parquet(tmp, out)
                try:
                    yield writer
                finally:
                    writer.close()
            else:
                with tmp.open("w", encoding="utf-8", newline="") as fh:
                    yield _Csv(fh)
    except OSError as exc:
        raise OutputError(f"cannot write labels ({exc.strerror or exc})", path=out) from None
