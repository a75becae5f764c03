"""Teacher labelling: audio files -> windows -> teacher A/D/V -> a labels CSV, with a resumable cache.

The cache is a small SQLite file keyed by the audio's sha256, the teacher's identity and the window
and hop lengths, so a re-run (or a run on the same audio under another name) skips finished files.
Each finished file is committed to the cache at once, so an interrupted run loses at most the files
in flight; the CSV itself is written atomically at the end, in the order of the input list.

Work is spread over ``workers``: processes, each loading its own copy of the teacher (when the
teacher is given as a path), or threads sharing one teacher object (when a loaded teacher is passed
in). Each worker's engine uses ``threads`` intra-op threads.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .audio import SAMPLING_RATE, AudioItem, load, windows
from .bundle import sha256_file
from .errors import InputError, OutputError
from .fileio import replacing
from .labelfile import REQUIRED_COLUMNS, LabelTable, read_labels
from .metrics import DIMENSIONS
from .userfiles import open_sqlite

__all__ = ["LabelConfig", "LabelResult", "LabelTable", "COLUMNS", "REQUIRED_COLUMNS", "label", "read_labels",
           "file_sha256", "default_cache_path"]

COLUMNS = ("file", "speaker", "window", "start_s", "duration_s", *DIMENSIONS, "sha256", "teacher")
"""Columns of a labels CSV, in order."""
PARALLEL = ("process", "thread")
FILES_PER_TASK = 8
"""Files handed to a worker at a time (their windows are batched together)."""
CACHE_SUFFIX = ".cache.sqlite"


@dataclass
class LabelConfig:
    """How audio is cut and labelled."""

    window_seconds: float = 2.0
    """Window length in seconds; a shorter file is zero-padded to one window."""
    hop_seconds: float | None = None
    """Hop between windows in seconds (default: the window length, no overlap)."""
    batch_size: int = 16
    """Windows per teacher call."""
    workers: int = 1
    """Parallel workers: processes or threads (see ``parallel``)."""
    parallel: str = "process"
    """``process``: each worker process loads its own teacher (no shared state, start-up cost);
    ``thread``: threads share one teacher (no start-up cost; the engine must release the GIL, as
    onnxruntime and torch do). A teacher passed in already loaded always uses threads."""
    threads: int = 1
    """Intra-op threads of each worker's engine."""
    skip_errors: bool = False
    """Skip unreadable audio (listed in the result) instead of stopping with an error."""

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * SAMPLING_RATE))

    @property
    def hop_samples(self) -> int:
        return int(round((self.hop_seconds or self.window_seconds) * SAMPLING_RATE))

    def validate(self) -> None:
        """Raises InputError for a number outside its range (:data:`edgeser.limits.LABEL`) or another --parallel."""
        from .limits import LABEL, check

        check(self, LABEL)
        if self.parallel not in PARALLEL:
            raise InputError(f"--parallel must be one of {', '.join(PARALLEL)}, got {self.parallel!r}")


@dataclass
class LabelResult:
    """What a labelling run did."""

    out: Path
    """The labels CSV."""
    rows: int = 0
    """Labelled windows written."""
    files: int = 0
    """Files labelled (from the cache or fresh)."""
    cached_files: int = 0
    """Files whose labels came from the cache."""
    teacher_windows: int = 0
    """Windows the teacher was run on in this run."""
    skipped: list[str] = field(default_factory=list)
    """Files skipped as unreadable (``path: reason``), with ``skip_errors``."""


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    return sha256_file(Path(path))


def default_cache_path(out: Path) -> Path:
    """The cache beside the output: ``labels.csv`` -> ``labels.csv.cache.sqlite``."""
    return out.with_name(out.name + CACHE_SUFFIX)


# --------------------------------------------------------------------------- cache


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
        try:
            self.db.execute("INSERT OR REPLACE INTO labels VALUES (?, ?, ?, ?, ?)",
                            (sha, teacher, window, hop, json.dumps(values)))
            self.db.commit()
        except sqlite3.Error as exc:
            raise OutputError(f"cannot write to the label cache ({exc})", path=self.path) from None
        self.stored += 1

    def close(self) -> None:
        self.db.close()
        if self.created and not self.stored:
            self.path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- work


@dataclass(frozen=True)
class _Task:
    paths: tuple[str, ...]
    window: int
    hop: int
    batch_size: int
    skip_errors: bool


def _run_task(teacher: Any, task: _Task) -> list[tuple[str, list[list[float]] | str]]:
    """Load, window and label the task's files; returns (path, [[start_s, a, d, v], ...] or error text)."""
    loaded: list[tuple[str, np.ndarray]] = []
    results: list[tuple[str, list[list[float]] | str]] = []
    for p in task.paths:
        try:
            loaded.append((p, windows(load(p), task.window, task.hop)))
        except InputError as exc:
            if not task.skip_errors:
                raise
            results.append((p, exc.message))
    if loaded:
        stacked = np.concatenate([w for _, w in loaded]).astype(np.float32, copy=False)
        out = np.concatenate(
            [
                np.asarray(teacher(np.ascontiguousarray(stacked[i : i + task.batch_size])))
                for i in range(0, len(stacked), task.batch_size)
            ]
        )
        if out.shape != (len(stacked), 3) or not np.isfinite(out).all():
            raise ValueError(
                f"teacher returned shape {out.shape} or non-finite values for {len(stacked)} windows"
            )
        at = 0
        for p, w in loaded:
            rows = [[i * task.hop / SAMPLING_RATE, *map(float, out[at + i])] for i in range(len(w))]
            results.append((p, rows))
            at += len(w)
    return results


_WORKER_TEACHER: Any = None
_WORKER_ERROR: str | None = None


def _init_worker(spec: str, output: str | None, threads: int) -> None:
    global _WORKER_TEACHER, _WORKER_ERROR
    from .errors import EdgeserError
    from .teachers import load_teacher

    try:
        _WORKER_TEACHER = load_teacher(spec, output=output, threads=threads)
    except EdgeserError as exc:  # reported by the first task, as an InputError in the main process
        _WORKER_ERROR = exc.message


def _worker_teacher() -> Any:
    if _WORKER_ERROR is not None:
        raise InputError(_WORKER_ERROR)
    return _WORKER_TEACHER


def _run_in_worker(task: _Task) -> list[tuple[str, list[list[float]] | str]]:
    return _run_task(_worker_teacher(), task)


def _executor(
    teacher: Any, spec: str | None, output: str | None, config: LabelConfig
) -> tuple[Executor, Callable[[_Task], Any]]:
    if config.workers > 1 and spec is not None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # never fork a process that holds engine threads
        pool = ProcessPoolExecutor(
            config.workers, mp_context=ctx, initializer=_init_worker, initargs=(spec, output, config.threads)
        )
        return pool, _run_in_worker
    return ThreadPoolExecutor(config.workers), lambda task: _run_task(teacher, task)


def _tasks(paths: list[str], config: LabelConfig) -> Iterator[_Task]:
    for i in range(0, len(paths), FILES_PER_TASK):
        yield _Task(
            tuple(paths[i : i + FILES_PER_TASK]),
            config.window_samples,
            config.hop_samples,
            config.batch_size,
            config.skip_errors,
        )


# --------------------------------------------------------------------------- output


def _display_path(path: Path, out: Path) -> str:
    """Relative to the CSV's folder when the audio lies under it, else absolute (POSIX separators)."""
    path, base = path.resolve(), out.resolve().parent
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def _write_csv(out: Path, rows: list[list[Any]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    try:
        with replacing(out, suffix=".csv") as tmp:
            tmp.write_text(buf.getvalue(), encoding="utf-8", newline="")
    except OSError as exc:
        raise OutputError(f"cannot write labels ({exc.strerror})", path=out) from None


def _rows_for(item: AudioItem, values: list[list[float]], sha: str, teacher: str, out: Path,
              window_s: float) -> list[list[Any]]:
    """CSV rows of one file: file, speaker, window, start_s, duration_s, A, D, V, sha256, teacher."""
    name, speaker = _display_path(item.path, out), item.speaker or ""
    return [[name, speaker, i, f"{v[0]:.4f}", f"{window_s:.4f}", *(f"{x:.6f}" for x in v[1:4]), sha, teacher]
            for i, v in enumerate(values)]


# --------------------------------------------------------------------------- labelling


def _hash_items(
    items: Sequence[AudioItem], config: LabelConfig, skipped: list[str]
) -> list[tuple[AudioItem, str]]:
    hashed = []
    for item in items:
        try:
            hashed.append((item, file_sha256(item.path)))
        except FileNotFoundError:
            if not config.skip_errors:
                raise InputError("audio file not found", path=item.path) from None
            skipped.append(f"{item.path}: audio file not found")
        except OSError as exc:
            if not config.skip_errors:
                raise InputError(f"cannot read audio ({exc.strerror})", path=item.path) from None
            skipped.append(f"{item.path}: cannot read audio ({exc.strerror})")
    return hashed


def _progress(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), disable=not enabled,
                    console=Console(stderr=True))


def _teacher_identity(pool: Executor, teacher: Any) -> str:
    if teacher is not None:
        return str(teacher.identity)
    return pool.submit(_worker_identity).result()


def _worker_identity() -> str:
    return str(_worker_teacher().identity)


def _collect(pool: Executor, run: Callable[[_Task], Any], todo: list[str], config: LabelConfig,
             store: Callable[[str, list[list[float]] | str], None], progress: bool) -> None:
    """Run the tasks, storing each file's result as soon as its task finishes."""
    import time
    from concurrent.futures import as_completed

    futures: dict[Future[Any], _Task] = {pool.submit(run, t): t for t in _tasks(todo, config)}
    t0, done = time.monotonic(), 0
    with _progress(progress) as bar:
        task_id = bar.add_task("labelling", total=len(todo), rate="")
        try:
            for fut in as_completed(futures):
                try:
                    results = fut.result()
                except ValueError as exc:  # the teacher rejected the batch or returned bad values
                    first = futures[fut].paths[0]
                    raise InputError(
                        f"teacher failed on a batch starting with this file: {exc}", path=first
                    ) from None
                for path, values in results:
                    store(path, values)
                done += len(futures[fut].paths)
                rate = f"{done / max(time.monotonic() - t0, 1e-9):.1f} files/s"
                bar.update(task_id, advance=len(futures[fut].paths), rate=rate)
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def label(items: Sequence[AudioItem], teacher: Any, out: str | Path, *, config: LabelConfig | None = None,
          cache: str | Path | None = None, teacher_output: str | None = None,
          progress: bool = False) -> LabelResult:
    """Label audio windows with a teacher and write a labels CSV (atomically).

    Args:
        items: audio files (see :func:`edgeser.audio.list_audio`), labelled in this order.
        teacher: a loaded :class:`~edgeser.teachers.Teacher` (workers are then threads sharing it), or a
            teacher spec for :func:`~edgeser.teachers.load_teacher` (a path, ``default``, ``a+b``), which each
            worker process loads itself when ``config.workers > 1``.
        out: the labels CSV (columns :data:`COLUMNS`); replaced if it exists.
        config: window, batch and parallelism settings.
        cache: the SQLite cache (default: beside ``out``, ``<out>.cache.sqlite``).
        teacher_output: the ONNX output to read, when ``teacher`` is a spec (see ``load_teacher``).
        progress: show a rich progress bar.

    Returns:
        counts of what was done, and the files skipped with ``skip_errors``.

    Raises:
        InputError: an audio file is missing or unreadable (unless ``skip_errors``), the teacher cannot be
            loaded, or the teacher fails on a batch. Finished files stay in the cache.
        OutputError: the cache or the CSV cannot be written.
    """
    config = config or LabelConfig()
    config.validate()
    out = Path(out)
    result = LabelResult(out=out)
    spec = None if hasattr(teacher, "identity") else str(teacher)
    if spec is not None and (config.workers == 1 or config.parallel == "thread"):
        from .teachers import load_teacher

        teacher, spec = load_teacher(spec, output=teacher_output, threads=config.threads), None
    hashed = _hash_items(items, config, result.skipped)
    store = Cache(Path(cache) if cache is not None else default_cache_path(out))
    pool, run = _executor(teacher if spec is None else None, spec, teacher_output, config)
    try:
        identity = _teacher_identity(pool, teacher if spec is None else None)
        key = (identity, config.window_samples, config.hop_samples)
        sha_of = {str(item.path): sha for item, sha in hashed}
        todo = sorted({str(item.path) for item, sha in hashed if store.get(sha, *key) is None})
        result.cached_files = len(hashed) - len(todo)

        def keep(path: str, values: list[list[float]] | str) -> None:
            if isinstance(values, str):
                result.skipped.append(f"{path}: {values}")
            else:
                store.put(sha_of[path], *key, values)
                result.teacher_windows += len(values)

        if todo:
            _collect(pool, run, todo, config, keep, progress)
        rows: list[list[Any]] = []
        for item, sha in hashed:
            values = store.get(sha, *key)
            if values is not None:
                rows.extend(_rows_for(item, values, sha, identity, out, config.window_seconds))
                result.files += 1
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        store.close()
    _write_csv(out, rows)
    result.rows = len(rows)
    return result
