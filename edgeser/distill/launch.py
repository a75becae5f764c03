"""``edgeser distill --nproc N``: start N distillation processes on this machine with ``torch.distributed``.

The processes are started by torch's elastic launcher (the one behind ``torchrun --standalone``: a
rendezvous on a free local port, no restarts); each runs :func:`~edgeser.distill.distill` as ``torchrun``
would run ``edgeser distill``, reading its rank from the environment. Rank 0 shows the progress and writes
the checkpoints; its :class:`~edgeser.distill.DistillResult` is returned here.

When a process fails with an edgeser error, the launcher stops the others and that error (the lowest rank's,
when several failed) is raised here as it was raised there: one line, the same exit code.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import errors
from ..errors import EdgeserError, InputError
from .config import DistillConfig
from .ddp import World, placement
from .loop import DistillResult

__all__ = ["distill_processes"]

_QUIET_LOGGERS = ("torch.distributed.elastic", "torch.multiprocessing", "torch.distributed")


@contextmanager
def _quiet_launcher() -> Iterator[None]:
    """The launcher's own log lines (rendezvous, worker exit reports, signals) are hidden: errors are reported
    as one line. (Call it once the launcher is imported: its loggers set their own levels.)"""
    names = [name for name in list(logging.root.manager.loggerDict) if name.startswith(_QUIET_LOGGERS)]
    loggers = [logging.getLogger(name) for name in {*_QUIET_LOGGERS, *names}]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def distill_processes(
    nproc: int,
    labels: str | Path,
    out: str | Path,
    *,
    config: DistillConfig,
    resume: bool = False,
    device: str = "auto",
    precision: str = "fp32",
    show_progress: bool = False,
) -> DistillResult:
    """Distil with ``nproc`` DDP processes on this machine; returns rank 0's result.

    Args:
        nproc: processes to start (each trains on its shard of every epoch; with ``device`` ``cuda`` or
            ``auto`` on a CUDA machine, process ``r`` uses ``cuda:r``).
        labels, out, config, resume, device, precision: as for :func:`~edgeser.distill.distill`.
        show_progress: rank 0 shows progress bars on stderr.

    Raises:
        InputError: already inside a torchrun process, or any error a process raised (see
            :func:`~edgeser.distill.distill`), with its own class and exit code.
    """
    inside = [name for name in ("RANK", "WORLD_SIZE") if name in os.environ]
    if inside:
        raise InputError(f"--nproc starts its own processes, but this one was started by torchrun ({inside[0]} is "
                         "set): leave out --nproc under torchrun")
    config.validate()
    placement(World(nproc - 1, nproc, nproc - 1), device, precision)  # a device this machine lacks fails here, once
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    launch = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1,
                          start_method="spawn")
    with tempfile.TemporaryDirectory(prefix="edgeser-distill-") as folder, _quiet_launcher():
        try:
            results = elastic_launch(launch, _rank_main)(str(labels), str(out), config.to_dict(), resume, device,
                                                         precision, show_progress, folder)
        except ChildFailedError as exc:
            raise _reported_error(Path(folder), exc) from None
        except SignalException:
            raise KeyboardInterrupt from None
    result = results[0]
    if not isinstance(result, DistillResult):
        raise EdgeserError(f"distillation process 0 returned {type(result).__name__}, not a result")
    return result


def _rank_main(labels: str, out: str, config: dict[str, Any], resume: bool, device: str, precision: str,
               show_progress: bool, folder: str) -> DistillResult:
    """One process of :func:`distill_processes` (started by the launcher, in a fresh interpreter)."""
    from rich.console import Console

    from ..progress import reporting
    from .loop import distill

    rank = int(os.environ.get("RANK", "0"))
    try:
        with reporting(show_progress and rank == 0, Console(stderr=True)) as bars:
            return distill(labels, out, config=DistillConfig.from_dict(config), resume=resume, device=device,
                           precision=precision, progress=bars)
    except EdgeserError as exc:
        report = {"rank": rank, "kind": type(exc).__name__, "message": exc.message}
        (Path(folder) / f"rank{rank}.json").write_text(json.dumps(report), encoding="utf-8")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # Ctrl-C reaches every process; the launcher passes it on once more
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.exit(130)


def _reported_error(folder: Path, failure: Any) -> BaseException:
    """The error the lowest failed rank reported, or a one-line account of a process that died without one."""
    reports = sorted((json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("rank*.json")),
                     key=lambda r: int(r["rank"]))
    if reports:
        first = reports[0]
        kind = getattr(errors, str(first["kind"]), EdgeserError)
        if not (isinstance(kind, type) and issubclass(kind, EdgeserError)):
            kind = EdgeserError
        return kind(str(first["message"]))
    failures = getattr(failure, "failures", {}) or {}
    if failures:
        rank, info = min(failures.items())
        code = getattr(info, "exitcode", "?")
        if code == 130 or (isinstance(code, int) and code < 0 and -code == 2):  # SIGINT
            return KeyboardInterrupt()
        return EdgeserError(f"distillation process {rank} stopped with exit code {code} (no edgeser error: "
                            "see its output above)")
    return EdgeserError("the distillation processes failed (see their output above)")
