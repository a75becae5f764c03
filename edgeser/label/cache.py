"""The label cache: a small SQLite file of finished files, so a rerun (or an interrupted run) skips them.

Keyed by the audio's sha256, the teacher's identity and the window and hop lengths, so a file under
another name is found too. Each finished file is committed at once: an interrupted run loses at most the
files in flight.

A run also keeps its queue here, in a temporary table of the connection (on disk, gone when it closes):
the files still to label, once per content, in the order they were listed. A manifest of millions of
files thus costs the run no memory per file.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError, OutputError
from ..userfiles import open_sqlite

__all__ = ["Cache", "CACHE_SUFFIX", "default_cache_path"]

CACHE_SUFFIX = ".cache.sqlite"
"""Appended to the labels file's name for its default cache."""


def default_cache_path(out: Path) -> Path:
    """The cache beside the output: ``labels.csv`` -> ``labels.csv.cache.sqlite``."""
    return out.with_name(out.name + CACHE_SUFFIX)


class Cache:
    """SQLite store of finished files: (sha256, teacher, window, hop) -> JSON list of (start, a, d, v).

    A cache file this run created is removed again on :meth:`close` if nothing was stored in it.
    """

    SCHEMA = ("CREATE TABLE labels (sha256 TEXT, teacher TEXT, window INTEGER, hop INTEGER, value TEXT, "
              "PRIMARY KEY (sha256, teacher, window, hop))")

    def __init__(self, path: Path) -> None:
        self.path, self.stored = path, 0
        self.created = not path.exists()
        self.db = open_sqlite(path, schema=self.SCHEMA, what="label cache")
        self.queued = 0
        """Files in this run's queue."""

    def has(self, sha: str, teacher: str, window: int, hop: int) -> bool:
        """True when the file's rows are stored (without reading them)."""
        try:
            return self.db.execute("SELECT 1 FROM labels WHERE sha256=? AND teacher=? AND window=? AND hop=?",
                                   (sha, teacher, window, hop)).fetchone() is not None
        except sqlite3.Error as exc:
            raise InputError(f"unreadable label cache ({exc})", path=self.path) from None

    def queue(self, sha: str, path: str) -> bool:
        """Add a file to this run's queue; False when a file with the same content is queued already.

        Raises:
            OutputError: the temporary table cannot be written.
        """
        try:
            if not self.queued:
                self.db.execute("PRAGMA temp_store = FILE")
                self.db.execute("CREATE TEMP TABLE IF NOT EXISTS queue (sha256 TEXT PRIMARY KEY, path TEXT)")
            added = self.db.execute("INSERT OR IGNORE INTO temp.queue VALUES (?, ?)", (sha, path)).rowcount == 1
        except sqlite3.Error as exc:
            raise OutputError(f"cannot write the run's queue beside the label cache ({exc})", path=self.path) from None
        self.queued += added
        return added

    def queue_chunks(self, size: int) -> Iterator[list[tuple[str, str]]]:
        """The queue as lists of at most ``size`` (path, sha256), in the order the files were queued."""
        last = 0
        while self.queued:
            rows = self.db.execute("SELECT rowid, path, sha256 FROM temp.queue WHERE rowid > ? ORDER BY rowid "
                                   "LIMIT ?", (last, size)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [(path, sha) for _, path, sha in rows]

    def get(self, sha: str, teacher: str, window: int, hop: int) -> list[list[float]] | None:
        """The stored rows of a file, or None when it is not cached.

        Raises:
            InputError: the entry is not a list of finite ``[start, a, d, v]`` rows.
        """
        try:
            row = self.db.execute("SELECT value FROM labels WHERE sha256=? AND teacher=? AND window=? AND hop=?",
                                  (sha, teacher, window, hop)).fetchone()
            values = None if row is None else json.loads(row[0])
        except (sqlite3.Error, ValueError, TypeError) as exc:
            raise InputError(f"corrupt label cache entry ({str(exc).splitlines()[0][:120]})", path=self.path) from None
        if values is not None and not (isinstance(values, list) and all(
                isinstance(v, list) and len(v) == 4 and all(isinstance(x, int | float) and math.isfinite(x) for x in v)
                for v in values)):
            raise InputError("corrupt label cache entry (not a list of [start, a, d, v] rows)", path=self.path)
        return values

    def put(self, sha: str, teacher: str, window: int, hop: int, values: list[list[float]]) -> None:
        """Store (and commit) one finished file's rows.

        Raises:
            OutputError: the database cannot be written.
        """
        try:
            self.db.execute("INSERT OR REPLACE INTO labels VALUES (?, ?, ?, ?, ?)",
                            (sha, teacher, window, hop, json.dumps(values)))
            self.db.commit()
        except sqlite3.Error as exc:
            raise OutputError(f"cannot write to the label cache ({exc})", path=self.path) from None
        self.stored += 1

    def close(self) -> None:
        """Close the database; remove the file if this run created it and stored nothing."""
        self.db.close()
        if self.created and not self.stored:
            self.path.unlink(missing_ok=True)
