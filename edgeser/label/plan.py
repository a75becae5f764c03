"""The two passes over a run's input that any engine shares: plan the work, then write the labels in order.

Pass one hashes every listed file (a small memo skips files listed again unchanged), asks the cache, and
queues the files still to label, once per content (:meth:`.cache.Cache.queue`); the sha256 of each listed
row goes to a temporary file, one line per row. Pass two reads the input again beside that file and takes
each row's labels from the cache. Nothing per file is held in memory beyond a chunk of rows.
"""

from __future__ import annotations

import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..audio import AudioItem
from ..errors import InputError, OutputError
from ..fileio import sha256_file
from .cache import Cache
from .manifest import Source

__all__ = ["Plan", "MEMO_FILES", "guard_outputs"]

MEMO_FILES = 4096
"""Hashes remembered by (path, size, modification time, inode), so a file listed again is not read again."""
_SKIPPED = "-"
"""A row's line in the plan file when its file could not be read."""


def _stat_key(path: Path) -> tuple[str, int, int, int]:
    st = path.stat()
    return str(path), st.st_size, st.st_mtime_ns, st.st_ino


def guard_outputs(source: Source, outputs: list[Path]) -> None:
    """Refuse an output that is one of the listed files (checked only for outputs that exist already).

    Raises:
        OutputError: naming the output and the input it would replace.
    """
    existing = {}
    for out in outputs:
        try:
            st = out.stat()
        except OSError:
            continue
        existing[(st.st_dev, st.st_ino)] = out
    if not existing:
        return
    _refuse(existing, source.inputs())
    for chunk in source.chunks():
        _refuse(existing, [item.path for item in chunk])


def _refuse(existing: dict[tuple[int, int], Path], paths: list[Path]) -> None:
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue
        out = existing.get((st.st_dev, st.st_ino))
        if out is not None:
            raise OutputError(f"is also an input of this command ({path}); choose another output", path=out)


class Plan:
    """One run's plan: the queue (in the cache's connection) and the sha256 of every listed row (a temp file)."""

    def __init__(self, source: Source, store: Cache, key: tuple[str, int, int], *, skip_errors: bool,
                 skipped: list[str]) -> None:
        self.source, self.store, self.key = source, store, key
        self.skip_errors, self.skipped = skip_errors, skipped
        self.listed = 0
        """Rows listed."""
        self.cached = 0
        """Rows whose file is in the cache already."""
        self._memo: OrderedDict[tuple[str, int, int, int], str] = OrderedDict()
        self._file: IO[str] = tempfile.TemporaryFile("w+", encoding="ascii", prefix="edgeser-plan-")

    def close(self) -> None:
        """Remove the plan's temporary file."""
        self._file.close()

    def _sha(self, item: AudioItem) -> str | None:
        try:
            key = _stat_key(item.path)
            sha = self._memo.get(key)
            if sha is None:
                sha = sha256_file(item.path)
                self._memo[key] = sha
                if len(self._memo) > MEMO_FILES:
                    self._memo.popitem(last=False)
            return sha
        except FileNotFoundError:
            reason = "audio file not found"
        except OSError as exc:
            reason = f"cannot read audio ({exc.strerror})"
        if not self.skip_errors:
            raise InputError(reason, path=item.path) from None
        self.skipped.append(f"{item.path}: {reason}")
        return None

    def hash_all(self) -> None:
        """Pass one: hash each row, count the cached ones, queue the rest (once per content).

        Raises:
            InputError: a file is missing or unreadable (unless ``skip_errors``), or the manifest is bad.
        """
        for chunk in self.source.chunks():
            lines = []
            for item in chunk:
                sha = self._sha(item)
                lines.append(sha or _SKIPPED)
                if sha is None:
                    continue
                self.listed += 1
                if self.store.has(sha, *self.key):
                    self.cached += 1
                else:
                    self.store.queue(sha, str(item.path))
            self._file.write("\n".join(lines) + "\n")
        self._file.flush()

    def todo(self, size: int) -> Iterator[list[tuple[str, str]]]:
        """The queued files, ``size`` (path, sha256) at a time, in the order they were listed."""
        return self.store.queue_chunks(size)

    def rows(self) -> Iterator[tuple[AudioItem, str]]:
        """Pass two: (item, sha256) of every row that was hashed, in the order listed.

        Raises:
            InputError: the input changed between the passes (a manifest edited during the run).
        """
        self._file.seek(0)
        for chunk in self.source.chunks():
            for item in chunk:
                line = self._file.readline().strip()
                if not line:
                    raise InputError("the manifest changed during the run (more rows than before); run again")
                if line != _SKIPPED:
                    yield item, line
        if self._file.readline():
            raise InputError("the manifest changed during the run (fewer rows than before); run again")

