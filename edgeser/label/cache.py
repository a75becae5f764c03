"""The label cache: a small SQLite file of finished files, so a rerun (or an interrupted run) skips them.

Keyed by the audio's sha256, the teacher's identity and the window and hop lengths, so a file under
another name is found too. Each finished file is committed at once: an interrupted run loses at most the
files in flight.
"""

from __future__ import annotations

import json
import math
import sqlite3
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
