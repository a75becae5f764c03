"""The local engine: a pool of processes (one teacher each) or threads (one shared teacher) over tasks of a few files.

Process workers are spawned, never forked (a process holding engine threads must not fork); each loads
its own teacher from the spec in its initializer. A task reads and labels its files with
:mod:`.batch`'s two stages; its result is stored as soon as it finishes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..progress import Reporter
from .batch import FileLabels, label_batch, read_batch
from .config import LabelConfig

__all__ = ["FILES_PER_TASK", "TASKS_PER_WORKER", "Keep", "executor", "collect", "teacher_identity"]

FILES_PER_TASK = 8
"""Files handed to a worker at a time (their windows are batched together)."""
TASKS_PER_WORKER = 4
"""Tasks in flight per worker: enough to keep it busy, few enough that memory does not grow with the input."""

Keep = Callable[[str, str, "list[list[float]] | str"], None]
"""Stores one file's outcome: (path, sha256, rows or the reason it was skipped)."""


@dataclass(frozen=True)
class _Task:
    paths: tuple[str, ...]
    window: int
    hop: int
    batch_size: int
    skip_errors: bool


def _run_task(teacher: Any, task: _Task) -> list[FileLabels]:
    """Load, window and label the task's files; returns (path, [[start_s, a, d, v], ...] or error text)."""
    batch = read_batch(task.paths, task.window, task.hop, skip_errors=task.skip_errors)
    return label_batch(teacher, batch, batch_size=task.batch_size)


_WORKER_TEACHER: Any = None
_WORKER_ERROR: str | None = None


def _init_worker(spec: str, output: str | None, threads: int, device: str, precision: str) -> None:
    global _WORKER_TEACHER, _WORKER_ERROR
    from ..errors import EdgeserError
    from ..teachers import load_teacher

    try:
        _WORKER_TEACHER = load_teacher(spec, output=output, threads=threads, device=device, precision=precision)
    except EdgeserError as exc:  # reported by the first task, as an InputError in the main process
        _WORKER_ERROR = exc.message


def _worker_teacher() -> Any:
    if _WORKER_ERROR is not None:
        raise InputError(_WORKER_ERROR)
    return _WORKER_TEACHER


def _run_in_worker(task: _Task) -> list[FileLabels]:
    return _run_task(_worker_teacher(), task)


def _worker_identity() -> str:
    return str(_worker_teacher().identity)


def executor(
    teacher: Any, spec: str | None, output: str | None, config: LabelConfig
) -> tuple[Executor, Callable[[_Task], Any]]:
    """The pool and the function its tasks run: processes that load ``spec`` each, or threads sharing ``teacher``."""
    if config.workers > 1 and spec is not None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # never fork a process that holds engine threads
        pool = ProcessPoolExecutor(
            config.workers, mp_context=ctx, initializer=_init_worker,
            initargs=(spec, output, config.threads, config.device, config.precision),
        )
        return pool, _run_in_worker
    return ThreadPoolExecutor(config.workers), lambda task: _run_task(teacher, task)


def teacher_identity(pool: Executor, teacher: Any) -> str:
    """The teacher's identity: of ``teacher``, or asked of a worker process when the teacher lives there."""
    if teacher is not None:
        return str(teacher.identity)
    return pool.submit(_worker_identity).result()


def _tasks(todo: Iterable[list[tuple[str, str]]], config: LabelConfig) -> Iterator[tuple[_Task, tuple[str, ...]]]:
    """Tasks of :data:`FILES_PER_TASK` files, each with the files' sha256."""
    for chunk in todo:
        for i in range(0, len(chunk), FILES_PER_TASK):
            part = chunk[i : i + FILES_PER_TASK]
            task = _Task(tuple(p for p, _ in part), config.window_samples, config.hop_samples, config.batch_size,
                         config.skip_errors)
            yield task, tuple(sha for _, sha in part)


def collect(pool: Executor, run: Callable[[_Task], Any], todo: Iterable[list[tuple[str, str]]], total: int,
            config: LabelConfig, keep: Keep, progress: Reporter) -> None:
    """Run the tasks, a bounded number in flight, storing each file's result as soon as its task finishes.

    Args:
        pool: the workers (:func:`executor`).
        run: the function the tasks run.
        todo: (path, sha256) of the files to label, in lists.
        total: how many files ``todo`` holds (for the progress bar).
        config: windows, batch size, workers.
        keep: stores a file's outcome.
        progress: where the files are counted.

    Raises:
        InputError: the teacher failed on a batch (naming the batch's first file), or a file is unreadable.
    """
    tasks = _tasks(todo, config)
    limit = max(1, config.workers) * TASKS_PER_WORKER
    futures: dict[Future[Any], tuple[_Task, tuple[str, ...]]] = {}
    t0, done = time.monotonic(), 0
    bar = progress.start("labelling", total)
    try:
        while True:
            for task, shas in tasks:
                futures[pool.submit(run, task)] = (task, shas)
                if len(futures) >= limit:
                    break
            if not futures:
                return
            finished, _ = wait(futures, return_when=FIRST_COMPLETED)
            for fut in finished:
                task, shas = futures.pop(fut)
                try:
                    results = fut.result()
                except ValueError as exc:  # the teacher rejected the batch or returned bad values
                    raise InputError(f"teacher failed on a batch starting with this file: {exc}",
                                     path=task.paths[0]) from None
                sha_of = dict(zip(task.paths, shas, strict=True))
                for path, values in results:
                    keep(path, sha_of[path], values)
                done += len(task.paths)
                progress.advance(bar, len(task.paths),
                                 info=f"{done / max(time.monotonic() - t0, 1e-9):.1f} files/s")
    except BaseException:
        for f in futures:
            f.cancel()
        raise
