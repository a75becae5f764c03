"""The Ray engine: the queue as a Ray Data pipeline, on a local Ray instance or a cluster (``edgeser[ray]``).

As in Ray's batch-inference guide: the queued (path, sha256) files become a dataset (blocks put into the
object store a chunk at a time, so the driver holds references, not rows); reading, resampling and
windowing run as CPU tasks (:func:`.batch.read_batch`); the teacher lives in an actor pool, one teacher per
actor loaded from its spec (:func:`.batch.label_batch`), with GPUs when asked; the driver iterates the
results as they finish and stores each file in the cache at once, so an interrupted run resumes. An actor
whose process dies is restarted and its batch retried (Ray Data's actor pools restart actors and retry
their tasks by default).

Without an address a local instance sized to this machine is started (no dashboard, quiet logs) and
stopped at the end, also on an error or Ctrl-C; with one (``auto``, ``host:port``) the cluster is
joined and left running (a Ray Client ``ray://`` address is refused by :class:`.LabelConfig`). Only this
module imports Ray, and only when the engine is used.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..errors import EdgeserError, InputError
from ..progress import Reporter
from .batch import WindowBatch, label_batch, read_batch
from .config import LabelConfig
from .workers import FILES_PER_TASK, Keep

__all__ = ["RayEngine", "TeacherActor", "ray_module", "BLOCK_FILES"]

READ_TASKS_PER_WORKER = 2
"""Reading tasks in flight per teacher actor (they reserve no CPU: reading is light next to the teacher)."""
BLOCK_FILES = 256
"""Most files in one block of the dataset: results reach the driver (and the cache) a block at a time."""
BLOCKS_PER_WORKER = 8
"""Blocks per teacher actor at least, when the queue is short (blocks are then smaller, down to one batch)."""
PULL_THREADS = "iter_threaded"
"""The name Ray Data gives the threads that pull and format a dataset's batches for its iterator."""
PULL_THREADS_WAIT_S = 10.0
"""The longest a stopped run waits for those threads to end (they end within milliseconds once stopped)."""


def _wait_for_pull_threads(before: set[threading.Thread], timeout: float = PULL_THREADS_WAIT_S) -> None:
    """Wait until the batch-pulling threads started since ``before`` have ended.

    Closing the iterator only asks them to stop; one may still be fetching a block. A thread that calls into
    Ray after ``ray.shutdown()`` ends the whole process at once with exit code 1 (Ray's core worker quits),
    losing the run's own exit code and message, so Ray is left only once they are gone.
    """
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread not in before and thread.name == PULL_THREADS:
            thread.join(max(0.0, deadline - time.monotonic()))


def ray_module() -> Any:
    """The ``ray`` package, with Ray Data.

    Raises:
        InputError: Ray is not installed (names the pip extra).
    """
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise InputError("--engine ray needs Ray Data: pip install 'edgeser[ray]'") from None
    return ray


def _edgeser_error(exc: BaseException) -> EdgeserError | None:
    """The edgeser error behind a Ray exception (its cause chain), if there is one."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, EdgeserError) and type(e).__module__ == "edgeser.errors":  # not Ray's wrapper of one
            return e
        stack.extend([getattr(e, "cause", None), e.__cause__, e.__context__])
    return None


def _read(batch: dict[str, np.ndarray], *, window: int, hop: int) -> dict[str, Any]:
    """CPU stage: files -> windows. One row per file: its windows flattened, or why it could not be read."""
    paths = [str(p) for p in batch["path"]]
    read = read_batch(paths, window, hop, skip_errors=True)
    sha_of = dict(zip(paths, (str(s) for s in batch["sha"]), strict=True))
    errors = dict(read.errors)
    flat: list[np.ndarray] = []
    at = 0
    lengths = read.lengths if read.lengths is not None else np.full(len(read.windows), window)
    valid: dict[str, int] = {}
    for path, count in zip(read.paths, read.counts, strict=True):
        flat.append(read.windows[at : at + count].reshape(-1))
        valid[path] = int(lengths[at])
        at += count
    windows = dict(zip(read.paths, flat, strict=True))
    empty = np.zeros(0, np.float32)
    return {
        "path": np.array(paths, dtype=object),
        "sha": np.array([sha_of[p] for p in paths], dtype=object),
        "windows": _ragged([windows.get(p, empty) for p in paths]),
        "valid": np.array([valid.get(p, 0) for p in paths], dtype=np.int64),
        "error": np.array([errors.get(p, "") for p in paths], dtype=object),
    }


def _ragged(arrays: list[np.ndarray]) -> np.ndarray:
    """An object array of 1-D arrays (Ray Data stores it as a variable-shaped tensor column)."""
    out = np.empty(len(arrays), dtype=object)
    out[:] = arrays
    return out


class TeacherActor:
    """One teacher per actor, loaded from its spec in ``__init__``; labels batches of read files."""

    def __init__(self, spec: str, output: str | None, threads: int, device: str, precision: str,
                 window: int, hop: int, batch_size: int) -> None:
        from ..teachers import load_teacher

        self.teacher = load_teacher(spec, output=output, threads=threads, device=device, precision=precision)
        self.window, self.hop, self.batch_size = window, hop, batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        paths = [str(p) for p in batch["path"]]
        readable = [i for i, e in enumerate(batch["error"]) if not e]
        counts = [len(batch["windows"][i]) // self.window for i in readable]
        windows = (np.concatenate([np.asarray(batch["windows"][i], np.float32) for i in readable])
                   .reshape(-1, self.window) if readable else np.zeros((0, self.window), np.float32))
        lengths = np.repeat([int(batch["valid"][i]) for i in readable], counts).astype(np.int64)
        errors = tuple((paths[i], str(batch["error"][i])) for i in range(len(paths)) if batch["error"][i])
        read = WindowBatch(tuple(paths[i] for i in readable), tuple(counts), windows, self.hop, errors,
                           None if (lengths == self.window).all() else lengths)
        failed = ""
        try:
            results = dict(label_batch(self.teacher, read, batch_size=self.batch_size))
        except ValueError as exc:  # as the local engine reports it
            results, failed = {}, InputError(f"teacher failed on a batch starting with this file: {exc}",
                                             path=read.paths[0] if read.paths else paths[0]).message
        except EdgeserError as exc:
            results, failed = {}, exc.message
        values = [results.get(p, "") for p in paths]
        return {
            "path": batch["path"],
            "sha": batch["sha"],
            "values": _ragged([np.asarray(v, np.float64).reshape(-1) if isinstance(v, list) else np.zeros(0)
                               for v in values]),
            "error": np.array([v if isinstance(v, str) else "" for v in values], dtype=object),
            "failed": np.array([failed] * len(paths), dtype=object),
        }


def _identity(spec: str, output: str | None, device: str, precision: str) -> str:
    """The teacher's identity, found where an actor would run (so a device it lacks fails here, once)."""
    from ..teachers import load_teacher

    return str(load_teacher(spec, output=output, device=device, precision=precision).identity)


def _quiet_ray_data() -> None:
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


class RayEngine:
    """Label the queue with Ray Data (see the module docstring)."""

    def __init__(self, spec: str, output: str | None, config: LabelConfig) -> None:
        self.ray = ray_module()
        self.spec, self.output, self.config = spec, output, config
        self.started = False
        # Ray's C++ core logs to this process's stderr; its one line per actor pool (a note that Ray Data's own
        # restartable actors take arguments from the object store) is not for edgeser's users.
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        t0 = time.monotonic()
        if self.ray.is_initialized():  # a caller's own connection: use it, leave it
            pass
        elif config.ray_address is None:
            self.ray.init(address="local", num_cpus=len(os.sched_getaffinity(0)), include_dashboard=False,
                          log_to_driver=False,
                          logging_level=logging.ERROR)
            self.started = True
        else:
            self._join(config.ray_address)
            self.started = True
        self.startup_s = time.monotonic() - t0
        """Seconds it took to start or join Ray."""
        try:
            _quiet_ray_data()
        except BaseException:
            self.close()
            raise

    def _join(self, address: str) -> None:
        try:
            self.ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise InputError(f"--ray-address {address}: cannot join the Ray cluster "
                             f"({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__})") from None

    def identity(self) -> str:
        gpus = {"num_gpus": self.config.gpus_per_worker} if self.config.gpus_per_worker else {}
        remote = self.ray.remote(num_cpus=0, max_retries=0, **gpus)(_identity)
        ref = remote.remote(self.spec, self.output, self.config.device, self.config.precision)
        try:
            return str(self.ray.get(ref))
        except Exception as exc:
            raise _edgeser_error(exc) or exc from None

    def label(self, todo: Iterable[list[tuple[str, str]]], total: int, keep: Keep, progress: Reporter) -> None:
        """Run the pipeline over the queue; store each file as its batch finishes.

        Raises:
            InputError: an unreadable file (without ``skip_errors``), or the teacher failed on a batch.
        """
        ray, config = self.ray, self.config
        refs = self._blocks(todo, total)
        workers = min(config.workers, len(refs))
        window, hop = config.window_samples, config.hop_samples
        gpus = {"num_gpus": config.gpus_per_worker} if config.gpus_per_worker else {}
        ds = ray.data.from_arrow_refs(refs).map_batches(
            _read, fn_kwargs={"window": window, "hop": hop}, batch_size=FILES_PER_TASK, batch_format="numpy",
            num_cpus=0, compute=ray.data.TaskPoolStrategy(size=min(READ_TASKS_PER_WORKER * workers, len(refs))),
        ).map_batches(
            TeacherActor, batch_size=FILES_PER_TASK, batch_format="numpy", compute=ray.data.ActorPoolStrategy(
                size=workers), num_cpus=config.threads if not config.gpus_per_worker else 1, **gpus,
            fn_constructor_kwargs={"spec": self.spec, "output": self.output, "threads": config.threads,
                                   "device": config.device, "precision": config.precision, "window": window,
                                   "hop": hop, "batch_size": config.batch_size},
        )
        bar, t0, done = progress.start("labelling", total), time.monotonic(), 0
        before = set(threading.enumerate())
        batches = iter(ds.iter_batches(batch_size=None, batch_format="numpy"))
        try:
            for batch in batches:
                done += self._store(batch, keep)
                progress.advance(bar, len(batch["path"]),
                                 info=f"{done / max(time.monotonic() - t0, 1e-9):.1f} files/s")
        except EdgeserError:
            raise
        except Exception as exc:
            raise _edgeser_error(exc) or exc from None
        finally:  # stop the pipeline's executor now, not when the iterator is collected (after a later run began)
            close = getattr(batches, "close", None)
            if close is not None:
                close()
            _wait_for_pull_threads(before)

    def _blocks(self, todo: Iterable[list[tuple[str, str]]], total: int) -> list[Any]:
        """The queue as blocks in the object store (references only on the driver)."""
        import pyarrow as pa

        size = max(FILES_PER_TASK, min(BLOCK_FILES, total // (BLOCKS_PER_WORKER * self.config.workers)))
        refs = []
        for chunk in todo:
            for i in range(0, len(chunk), size):
                part = chunk[i : i + size]
                refs.append(self.ray.put(pa.table({"path": [p for p, _ in part], "sha": [s for _, s in part]})))
        return refs

    def _store(self, batch: dict[str, np.ndarray], keep: Keep) -> int:
        failed = next((str(f) for f in batch["failed"] if f), "")
        if failed:
            raise InputError(failed)
        for path, sha, values, error in zip(batch["path"], batch["sha"], batch["values"], batch["error"],
                                            strict=True):
            if error and not self.config.skip_errors:
                raise InputError(str(error))
            keep(str(path), str(sha), str(error) if error else np.asarray(values).reshape(-1, 4).tolist())
        return len(batch["path"])

    def close(self) -> None:
        """Leave Ray: stop the local instance this run started, or disconnect from the cluster."""
        if self.started:
            self.started = False
            self.ray.shutdown()
