"""What a run labels, read in chunks: a list of audio items, or a manifest file of millions of rows.

A manifest is a CSV (text by :mod:`edgeser.userfiles`' encoding rule) or a Parquet file (``pip install
'edgeser[ray]'`` brings pyarrow) with a ``file`` column and an optional ``speaker`` column; relative paths
are resolved against the manifest's folder. It is streamed, never held whole: a run reads it twice (once to
hash and queue the files, once to write the labels in its order), a chunk of :data:`CHUNK_ROWS` at a time.
Rows are taken as listed: a file listed twice is labelled once (the cache is keyed by content) and its
windows appear twice in the labels.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..audio import AudioItem
from ..errors import InputError
from ..userfiles import UTF8_HINT, printable

__all__ = ["CHUNK_ROWS", "MANIFEST_SUFFIXES", "Manifest", "Source", "as_source", "pyarrow_module"]

CHUNK_ROWS = 8192
"""Rows read, hashed and written per step."""
MANIFEST_SUFFIXES = (".csv", ".parquet")
"""File endings of the manifest formats."""
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def pyarrow_module(path: Path, what: str) -> Any:
    """``pyarrow`` (with ``pyarrow.parquet`` loaded).

    Raises:
        InputError: it is not installed (names the file and the pip extra).
    """
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise InputError(f"reading or writing a Parquet {what} needs pyarrow: pip install 'edgeser[ray]'",
                         path=path) from None
    return pyarrow


@dataclass(frozen=True)
class Source:
    """Audio items already in memory (from :func:`edgeser.audio.list_audio`), served in chunks."""

    items: Sequence[AudioItem]

    def chunks(self) -> Iterator[list[AudioItem]]:
        for i in range(0, len(self.items), CHUNK_ROWS):
            yield list(self.items[i : i + CHUNK_ROWS])

    def inputs(self) -> list[Path]:
        """Files this source was read from (none)."""
        return []


@dataclass(frozen=True)
class Manifest(Source):
    """A manifest file (CSV or Parquet, ``file[,speaker]``), read a chunk at a time each time it is iterated."""

    items: Sequence[AudioItem] = ()
    path: Path = Path()

    @classmethod
    def open(cls, path: str | Path) -> Manifest:
        """Check the manifest's kind and columns now (an empty one is refused when first read).

        Raises:
            InputError: missing, another format, unreadable, or lacking a ``file`` column.
        """
        path = Path(path)
        if path.suffix.lower() not in MANIFEST_SUFFIXES:
            raise InputError(f"a manifest must be a .csv or .parquet file, got {printable(path.suffix or 'none')}",
                             path=path)
        if not path.is_file():
            raise InputError("manifest not found" if not path.exists() else "manifest is not a file", path=path)
        manifest = cls(path=path)
        next(manifest.chunks(), None)
        return manifest

    def inputs(self) -> list[Path]:
        return [self.path]

    def chunks(self) -> Iterator[list[AudioItem]]:
        rows = 0
        reader = self._parquet() if self.path.suffix.lower() == ".parquet" else self._csv()
        for chunk in reader:
            rows += len(chunk)
            yield chunk
        if not rows:
            raise InputError("manifest has no rows", path=self.path)

    def _item(self, name: str, speaker: str | None, where: str) -> AudioItem:
        if not name.strip():
            raise InputError(f"{where}: the file column is empty", path=self.path)
        f = Path(name)
        return AudioItem(f if f.is_absolute() else self.path.parent / f, speaker or None)

    def _csv(self) -> Iterator[list[AudioItem]]:
        try:
            with self.path.open("rb") as fh:
                head = fh.read(4)
            codec = next((c for bom, c in _BOMS if head.startswith(bom)), "utf-8")
            with self.path.open(encoding=codec, newline="") as fh:
                yield from self._csv_rows(csv.reader(fh))
        except UnicodeError as exc:
            raise InputError(f"manifest is not {codec.upper()} text ({str(exc)[:80]}); {UTF8_HINT}",
                             path=self.path) from None
        except csv.Error as exc:
            raise InputError(f"malformed manifest ({exc})", path=self.path) from None
        except OSError as exc:
            raise InputError(f"cannot read manifest ({exc.strerror or type(exc).__name__})", path=self.path) from None

    def _csv_rows(self, reader: Any) -> Iterator[list[AudioItem]]:
        fields = [f.strip() for f in next(reader, None) or []]
        if "file" not in fields:
            has = ", ".join(printable(f) for f in fields) or "none"
            raise InputError(f"manifest needs a 'file' column (has: {has})", path=self.path)
        at, who = fields.index("file"), fields.index("speaker") if "speaker" in fields else None
        chunk: list[AudioItem] = []
        for cells in reader:
            if not cells:
                continue
            if len(cells) <= at:
                raise InputError(f"line {reader.line_num}: the file column is empty", path=self.path)
            speaker = cells[who] if who is not None and who < len(cells) else None
            chunk.append(self._item(cells[at], speaker, f"line {reader.line_num}"))
            if len(chunk) == CHUNK_ROWS:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _unreadable(self, exc: BaseException) -> InputError:
        return InputError(f"unreadable Parquet manifest ({str(exc).splitlines()[0][:160]})", path=self.path)

    def _parquet(self) -> Iterator[list[AudioItem]]:
        pa = pyarrow_module(self.path, "manifest")
        try:
            pf = pa.parquet.ParquetFile(self.path)
            schema = pf.schema_arrow
        except (pa.ArrowException, OSError) as exc:
            raise self._unreadable(exc) from None
        if "file" not in schema.names:
            raise InputError(f"manifest needs a 'file' column (has: {', '.join(schema.names) or 'none'})",
                             path=self.path)
        columns = ["file", *(["speaker"] if "speaker" in schema.names else [])]
        for column in columns:
            kind = schema.field(column).type
            if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
                raise InputError(f"manifest column '{column}' must hold text, got {kind}", path=self.path)
        row = 0
        try:
            for batch in pf.iter_batches(batch_size=CHUNK_ROWS, columns=columns):
                files = batch.column(0).to_pylist()
                speakers = batch.column(1).to_pylist() if len(columns) == 2 else [None] * len(files)
                yield [self._item(f or "", s, f"row {row + i + 1}")
                       for i, (f, s) in enumerate(zip(files, speakers, strict=True))]
                row += len(files)
        except (pa.ArrowException, OSError) as exc:
            raise self._unreadable(exc) from None


def as_source(items: Sequence[AudioItem] | Source) -> Source:
    """A source for ``items``: itself when it is one already."""
    return items if isinstance(items, Source) else Source(items)
