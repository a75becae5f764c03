"""One labelling run: plan (hash, ask the cache, queue the rest), label the queue on an engine, write the
labels in input order from the cache.

Engines: ``local`` (:mod:`.workers`: this machine's processes or threads) and ``ray`` (:mod:`.ray_engine`:
a Ray Data pipeline on a local instance or a cluster). Both are fed the same queue, run the same
per-batch functions (:mod:`.batch`) and store into the same cache, so their labels are the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..audio import AudioItem
from ..errors import InputError, OutputError
from ..fileio import sha256_file
from ..progress import Reporter, silent
from .cache import Cache, default_cache_path
from .config import LabelConfig, LabelResult
from .manifest import Source, as_source, pyarrow_module
from .output import file_rows, is_parquet, writing
from .plan import Plan, guard_outputs
from .workers import Keep, collect, executor, teacher_identity

__all__ = ["label", "file_sha256", "Engine"]

QUEUE_CHUNK = 8192
"""Queued files handed to an engine at a time."""
RECENT_FILES = 256
"""Files whose labels are kept while the output is written (a memo for files listed more than once)."""


file_sha256 = sha256_file
"""Hex sha256 of a file's bytes (the public name ``edgeser.label`` has always offered; one implementation)."""


class Engine(Protocol):
    """Where the queue is labelled."""

    def identity(self) -> str:
        """The teacher's identity, as the cache keys it."""
        ...

    def label(self, todo: Iterable[list[tuple[str, str]]], total: int, keep: Keep, progress: Reporter) -> None:
        """Label the queued (path, sha256) files, calling ``keep`` for each as it finishes."""
        ...

    def close(self) -> None:
        """Release the workers (and a Ray instance this run started)."""
        ...


class _Local:
    """This machine's workers (:mod:`.workers`)."""

    def __init__(self, teacher: Any, spec: str | None, output: str | None, config: LabelConfig) -> None:
        self.teacher, self.config = teacher, config
        self.pool, self.run = executor(teacher, spec, output, config)

    def identity(self) -> str:
        return teacher_identity(self.pool, self.teacher)

    def label(self, todo: Iterable[list[tuple[str, str]]], total: int, keep: Keep, progress: Reporter) -> None:
        collect(self.pool, self.run, todo, total, self.config, keep, progress)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _engine(teacher: Any, teacher_output: str | None, config: LabelConfig) -> Engine:
    spec = None if hasattr(teacher, "identity") else str(teacher)
    if config.engine == "ray":
        if spec is None:
            raise InputError("--engine ray loads the teacher in each worker: give it as a path or 'default', "
                             "not as a loaded teacher")
        from .ray_engine import RayEngine

        return RayEngine(spec, teacher_output, config)
    if spec is not None and (config.workers == 1 or config.parallel == "thread"):
        from ..teachers import load_teacher

        teacher, spec = load_teacher(spec, output=teacher_output, threads=config.threads, device=config.device,
                                     precision=config.precision), None
    return _Local(teacher if spec is None else None, spec, teacher_output, config)


def label(items: Sequence[AudioItem] | Source, teacher: Any, out: str | Path, *,
          config: LabelConfig | None = None, cache: str | Path | None = None, teacher_output: str | None = None,
          progress: Reporter = silent) -> LabelResult:
    """Label audio windows with a teacher and write a labels file (atomically).

    Args:
        items: audio files (see :func:`edgeser.audio.list_audio`), or a :class:`~edgeser.label.Manifest`
            (read in chunks, for millions of files); labelled in this order.
        teacher: a loaded :class:`~edgeser.teachers.Teacher` (workers are then threads sharing it), or a
            teacher spec for :func:`~edgeser.teachers.load_teacher` (a path, ``default``, ``a+b``), which each
            worker process (or Ray actor) loads itself.
        out: the labels file (columns :data:`~edgeser.label.COLUMNS`): Parquet when it ends in ``.parquet``,
            else CSV; replaced if it exists.
        config: window, batch and parallelism settings.
        cache: the SQLite cache (default: beside ``out``, ``<out>.cache.sqlite``).
        teacher_output: the ONNX output to read, when ``teacher`` is a spec (see ``load_teacher``).
        progress: where the labelling is reported (:func:`edgeser.progress.progress_bars` shows it on stderr).

    Returns:
        counts of what was done, and the files skipped with ``skip_errors``.

    Raises:
        InputError: an audio file is missing or unreadable (unless ``skip_errors``), the teacher cannot be
            loaded, or the teacher fails on a batch. Finished files stay in the cache.
        OutputError: the CSV or the cache is one of the audio files, or cannot be written.
    """
    config = config or LabelConfig()
    config.validate()
    out = Path(out)
    cache_path = Path(cache) if cache is not None else default_cache_path(out)
    if cache_path.resolve() == out.resolve():
        raise OutputError("the label cache cannot be the labels file itself; choose another --cache", path=cache_path)
    source = as_source(items)
    guard_outputs(source, [out, cache_path])
    if is_parquet(out):
        pyarrow_module(out, "labels file")
    result = LabelResult(out=out)
    engine = _engine(teacher, teacher_output, config)
    store: Cache | None = None
    plan: Plan | None = None
    try:
        identity = engine.identity()
        key = (identity, config.window_samples, config.hop_samples)
        store = db = Cache(cache_path)
        plan = Plan(source, db, key, skip_errors=config.skip_errors, skipped=result.skipped)
        plan.hash_all()
        result.cached_files = plan.cached

        def keep(path: str, sha: str, values: list[list[float]] | str) -> None:
            if isinstance(values, str):
                result.skipped.append(f"{path}: {values}")
            else:
                db.put(sha, *key, values)
                result.teacher_windows += len(values)

        if db.queued:
            engine.label(plan.todo(QUEUE_CHUNK), db.queued, keep, progress)
        engine.close()  # the workers (and a Ray instance started here) are not needed to write the labels
        _write(out, plan, db, key, config, result)
    finally:
        engine.close()
        if plan is not None:
            plan.close()
        if store is not None:
            store.close()
    return result


def _write(out: Path, plan: Plan, store: Cache, key: tuple[str, int, int], config: LabelConfig,
           result: LabelResult) -> None:
    """Pass two: the labels of every listed row, in order, from the cache."""
    base = out.resolve().parent
    recent: dict[str, list[list[float]] | None] = {}  # a manifest often lists a few files many times
    with writing(out) as writer:
        for item, sha in plan.rows():
            if sha not in recent:
                if len(recent) >= RECENT_FILES:
                    recent.clear()
                recent[sha] = store.get(sha, *key)
            values = recent[sha]
            if values is not None:
                rows = file_rows(item, values, sha, key[0], base, config.window_seconds)
                writer.write(rows)
                result.rows += len(rows)
                result.files += 1
