"""User files: the one place that reads a file a user names, so every failure is one InputError naming it.

Text (audio lists, labels CSVs, YAML, JSON) follows one encoding rule: UTF-8 with or without a byte-order
mark, or UTF-16 / UTF-32 with one (what spreadsheets write when asked for "Unicode text"). Anything else,
and any NUL character (UTF-16 without a byte-order mark looks like that), is an InputError naming the file
and the byte offset, with the hint "save it as UTF-8". Binary formats (SQLite, PyTorch state, safetensors)
are opened through the library that reads them, and any exception it raises becomes an InputError.

Torch and safetensors are imported inside the functions that need them, so ``import edgeser`` stays light.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError, OutputError

__all__ = [
    "MAX_TEXT_BYTES",
    "UTF8_HINT",
    "CsvRows",
    "audio_seconds",
    "decode_text",
    "read_bytes",
    "read_text",
    "read_json",
    "read_yaml_mapping",
    "read_csv_rows",
    "open_sqlite",
    "printable",
    "load_torch_state",
    "safetensors_header",
    "load_safetensors",
]

MAX_TEXT_BYTES = 1 << 30
"""Largest text file read (1 GiB): a labels CSV of a million windows is about 150 MB."""
UTF8_HINT = "save it as UTF-8"
"""The advice given with every encoding error."""
SQLITE_MAGIC = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file."""
_BOMS = (  # UTF-32 first: its little-endian mark starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _first_line(exc: BaseException, limit: int = 160) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]


def printable(text: str) -> str:
    """``text`` as is when it prints on one line, else its Python literal (a file name with a newline ...)."""
    return text if text.isprintable() else repr(text)


def _require_file(path: Path, what: str) -> None:
    """Raise InputError unless ``path`` is an existing file (without reading it)."""
    try:
        if not path.exists():
            raise InputError(f"{what} not found", path=path)
        if not path.is_file():
            raise InputError(f"{what} is {'a folder' if path.is_dir() else 'not a regular file'}", path=path)
    except OSError as exc:  # e.g. a name too long for the file system
        raise InputError(f"cannot read {what} ({exc.strerror or type(exc).__name__})", path=path) from None


def read_bytes(path: str | Path, *, what: str = "file", limit: int | None = None) -> bytes:
    """The bytes of a user's file.

    Args:
        path: the file.
        what: what the file is, for messages ("labels file", "audio list" ...).
        limit: refuse a file larger than this many bytes.

    Raises:
        InputError: the file is missing, a folder, unreadable or larger than ``limit``.
    """
    path = Path(path)
    _require_file(path, what)
    try:
        size = path.stat().st_size
        if limit is not None and size > limit:
            raise InputError(f"{what} is too large ({size} bytes; at most {limit})", path=path)
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} ({exc.strerror or type(exc).__name__})", path=path) from None


def _byte_offset(text: str, index: int, bom: bytes, codec: str) -> int:
    """Byte offset in the file of character ``index`` of its decoded ``text``."""
    return len(bom) + len(text[:index].encode(codec))


def decode_text(data: bytes, path: str | Path, *, what: str = "text file") -> str:
    """Decode a user's text file by the encoding rule (see the module docstring).

    Raises:
        InputError: naming ``path``, the byte offset of the first offending byte, and the hint.
    """
    bom, codec = next(((b, c) for b, c in _BOMS if data.startswith(b)), (b"", "utf-8"))
    try:
        text = data[len(bom) :].decode(codec)
    except UnicodeDecodeError as exc:
        offset, byte = len(bom) + exc.start, data[len(bom) + exc.start]
        name = "UTF-8" if codec == "utf-8" else codec.upper()
        raise InputError(f"{what} is not {name} text: byte 0x{byte:02x} at offset {offset} cannot be decoded; "
                         f"{UTF8_HINT}", path=path) from None
    nul = text.find("\x00")
    if nul >= 0:
        offset = _byte_offset(text, nul, bom, codec)
        raise InputError(f"{what} has a NUL character at byte offset {offset} (UTF-16 without a byte-order mark?); "
                         f"{UTF8_HINT}", path=path)
    return text


def read_text(path: str | Path, *, what: str = "text file") -> str:
    """A user's text file, decoded by the encoding rule; at most :data:`MAX_TEXT_BYTES`.

    Raises:
        InputError: the file is missing, unreadable, too large, or not in an accepted encoding.
    """
    return decode_text(read_bytes(path, what=what, limit=MAX_TEXT_BYTES), path, what=what)


def read_json(path: str | Path, *, what: str = "JSON file") -> dict[str, Any]:
    """A user's JSON file, which must hold one object.

    Raises:
        InputError: unreadable, not valid JSON, or not an object.
    """
    text = read_text(path, what=what)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"unreadable {what} (invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg})",
                         path=path) from None
    except (ValueError, RecursionError) as exc:  # an integer of over 4300 digits, nesting past the stack
        reason = _first_line(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise InputError(f"unreadable {what} ({reason})", path=path) from None
    if not isinstance(doc, dict):
        raise InputError(f"{what} must hold a JSON object, got {type(doc).__name__}", path=path)
    return doc


def read_yaml_mapping(path: str | Path, *, what: str = "YAML file") -> dict[Any, Any]:
    """A user's YAML file (``yaml.safe_load``: no object is ever built from it), which must be a mapping.

    An empty file is an empty mapping.

    Raises:
        InputError: unreadable, not valid YAML, or not a mapping.
    """
    import yaml

    text = read_text(path, what=what)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or _first_line(exc)
        raise InputError(f"invalid YAML in {what} ({where}{problem})", path=path) from None
    except (ValueError, TypeError, OverflowError) as exc:  # a tagged value that does not convert (!!int x, a date)
        raise InputError(f"invalid YAML in {what} ({_first_line(exc)})", path=path) from None
    except RecursionError:
        raise InputError(f"invalid YAML in {what} (nested too deeply)", path=path) from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise InputError(f"{what} must be a mapping of keys to values, got a {type(doc).__name__}", path=path)
    return doc


@dataclass(frozen=True)
class CsvRows:
    """A CSV file's header and rows, as strings."""

    fields: list[str]
    """Column names, stripped of surrounding spaces."""
    rows: list[dict[str, str]]
    """One mapping per row; a short row's missing cells are ''."""
    lines: list[int]
    """1-based line on which each row ends (the header is line 1)."""


def read_csv_rows(path: str | Path, *, required: Sequence[str] = (), what: str = "CSV file",
                  hint: str = "") -> CsvRows:
    """A user's CSV file (text by the encoding rule) with a header row; fully empty lines are skipped.

    Args:
        path: the file.
        required: columns that must be present.
        what: what the file is, for messages.
        hint: appended to the missing-columns message (e.g. how to write the file).

    Raises:
        InputError: unreadable, malformed CSV, a duplicated or missing column, or a row with more cells than
            the header (unless the extra cells are empty).
    """
    path = Path(path)
    reader = csv.reader(io.StringIO(read_text(path, what=what), newline=""))
    try:
        header = next(reader, None)
        fields = [f.strip() for f in header or []]
        dupes = sorted({printable(f) for f in fields if fields.count(f) > 1 and f})
        if dupes:
            raise InputError(f"{what} has column(s) {', '.join(dupes)} more than once", path=path)
        missing = [c for c in required if c not in fields]
        if missing:
            has = ", ".join(printable(f) for f in fields) or "none"
            raise InputError(f"{what} lacks column(s) {', '.join(missing)} (has: {has}){'; ' + hint if hint else ''}",
                             path=path)
        rows, lines = [], []
        for cells in reader:
            if not cells:
                continue
            if len(cells) > len(fields) and any(c.strip() for c in cells[len(fields) :]):
                raise InputError(f"line {reader.line_num}: {len(cells)} cells but the header names {len(fields)}",
                                 path=path)
            rows.append(dict(zip(fields, [*cells, *[""] * (len(fields) - len(cells))], strict=False)))
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise InputError(f"malformed {what} at line {reader.line_num} ({exc})", path=path) from None
    return CsvRows(fields, rows, lines)


def _columns(db: sqlite3.Connection) -> dict[str, list[tuple[str, str, int]]]:
    """Each table's columns: (name, declared type, position in the primary key)."""
    names = db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")
    tables = [str(r[0]) for r in names]
    quoted = {t: t.replace('"', '""') for t in tables}
    return {t: [(r[1], str(r[2]).upper(), r[5]) for r in db.execute(f'PRAGMA table_info("{quoted[t]}")')]
            for t in tables}


def _expected_columns(schema: str) -> dict[str, list[tuple[str, str, int]]]:
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(schema)
        return _columns(db)
    finally:
        db.close()


def _head(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise InputError(f"cannot read {what} ({exc.strerror})", path=path) from None


def open_sqlite(path: str | Path, *, schema: str, what: str = "database") -> sqlite3.Connection:
    """Open (or create) a SQLite file that must hold exactly the tables ``schema`` creates.

    A new or empty file gets the schema. An existing database must have the same tables and columns (other
    tables are refused too, so a database that belongs to something else is never written to).

    Args:
        path: the file.
        schema: ``CREATE TABLE`` statements.
        what: what the file is, for messages.

    Raises:
        InputError: the file is not a SQLite database, or its tables differ from ``schema``.
        OutputError: a new file cannot be created.
    """
    path = Path(path)
    existed = path.exists()
    if existed:
        _require_file(path, what)
        if _head(path, what) not in (b"", SQLITE_MAGIC):
            raise InputError(f"{what} is not a SQLite database", path=path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), timeout=30)
    except (OSError, sqlite3.Error) as exc:
        error = InputError if existed else OutputError
        raise error(f"cannot open {what} ({_first_line(exc)})", path=path) from None
    try:
        _check_schema(db, path, schema, what)
    except BaseException:
        db.close()
        raise
    return db


def _check_schema(db: sqlite3.Connection, path: Path, schema: str, what: str) -> None:
    try:
        found = _columns(db)
    except sqlite3.Error as exc:  # a truncated or damaged database
        raise InputError(f"unreadable {what} ({_first_line(exc)})", path=path) from None
    if not found:
        try:
            db.executescript(schema)
            db.commit()
        except sqlite3.Error as exc:
            raise OutputError(f"cannot write {what} ({_first_line(exc)})", path=path) from None
    elif found != _expected_columns(schema):
        raise InputError(f"{what} has another layout (tables: {', '.join(sorted(found))}); "
                         "name another file or delete this one", path=path)


def load_torch_state(path: str | Path, *, what: str = "checkpoint") -> dict[str, Any]:
    """A PyTorch file saved with ``torch.save``, read with ``weights_only=True`` (tensors and plain data only).

    Raises:
        InputError: missing, truncated, not a PyTorch file, holds other objects, or not a dict.
    """
    import torch

    path = Path(path)
    _require_file(path, what)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, OSError, UnpicklingError, EOFError ... for bad files
        raise InputError(f"corrupt or unsupported {what} (truncated or not a checkpoint: {_first_line(exc)})",
                         path=path) from None
    if not isinstance(state, dict):
        raise InputError(f"corrupt or unsupported {what} (holds a {type(state).__name__}, not a dict)", path=path)
    return state


def safetensors_header(path: str | Path, *, what: str = "safetensors file") -> tuple[dict[str, str],
                                                                                      dict[str, tuple[int, ...]]]:
    """The metadata and the tensor shapes of a safetensors file, read from its header alone (no tensor data).

    Raises:
        InputError: missing, truncated or not a safetensors file.
    """
    from safetensors import safe_open

    path = Path(path)
    _require_file(path, what)
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = dict(f.metadata() or {})
            shapes = {k: tuple(int(n) for n in f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # safetensors raises SafetensorError, OSError, ValueError ... for a bad header
        raise InputError(f"corrupt or unsupported {what} (not a readable safetensors file: {_first_line(exc)})",
                         path=path) from None
    return meta, shapes


def load_safetensors(path: str | Path, *, what: str = "safetensors file") -> dict[str, Any]:
    """All tensors of a safetensors file, as torch tensors on the CPU.

    Raises:
        InputError: missing, truncated or not a safetensors file.
    """
    from safetensors.torch import load_file

    path = Path(path)
    _require_file(path, what)
    try:
        return dict(load_file(str(path), device="cpu"))
    except Exception as exc:  # as in safetensors_header
        raise InputError(f"corrupt or unsupported {what} (not a readable safetensors file: {_first_line(exc)})",
                         path=path) from None


def audio_seconds(path: str | Path) -> float:
    """The length of an audio file in seconds, from its header (libsndfile).

    Raises:
        InputError: the file is missing or not audio that libsndfile reads.
    """
    import soundfile as sf

    path = Path(path)
    _require_file(path, "audio file")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile's own error types, RuntimeError, TypeError for odd headers
        raise InputError(f"cannot read audio ({_first_line(exc)})", path=path) from None
    if info.samplerate <= 0:
        raise InputError(f"audio header gives a sampling rate of {info.samplerate}", path=path)
    return float(info.frames) / float(info.samplerate)
