"""Distributed data parallel distillation: the processes of one run, their shards and their agreement.

A run is distributed when it is started by ``torchrun`` (or ``edgeser distill --nproc N``, which starts
``torch.distributed`` workers itself): each process reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` from
the environment (``MASTER_ADDR`` and ``MASTER_PORT`` say where the processes meet) and joins one process group,
gloo on the CPU, nccl on CUDA. Every process trains on its own shard of each epoch's windows and
:class:`torch.nn.parallel.DistributedDataParallel` averages the gradients, so the weights stay the same on
every process. Batch-norm statistics and the moving average follow rank 0 (it validates and saves them):
they are copied from rank 0 to the others after every epoch. At the end every process compares a sha256 of
its weights with rank 0's, and a difference fails the run.

Without those variables (or with ``WORLD_SIZE=1``) nothing here changes a run: no process group, no shard,
no wrapper, and the results are the single-process ones bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..devices import Placement, resolve
from ..errors import EdgeserError, InputError

__all__ = ["CPU", "FINGERPRINTS_ENV", "SINGLE", "TIMEOUT", "World", "fingerprint", "shard", "world_from_env"]

TIMEOUT = timedelta(minutes=30)
"""How long a process waits for the others in one collective step (e.g. while rank 0 validates) before the
run fails instead of hanging."""

FINGERPRINTS_ENV = "EDGESER_DDP_FINGERPRINTS"
"""A debugging aid: when this environment variable names a folder, every process writes
``rank<N>.json`` there at the end of a run with the sha256 of its final weights (see :func:`fingerprint`)."""


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one run."""

    rank: int = 0
    """Global rank (0: the one that validates, reports and writes)."""
    size: int = 1
    """Number of processes."""
    local_rank: int = 0
    """Rank on this machine (picks the GPU)."""

    @property
    def main(self) -> bool:
        """Whether this process validates, shows progress and writes the checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


SINGLE = World()
"""A run of one process."""

CPU = Placement("cpu")
"""fp32 on the CPU."""


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise InputError(f"environment variable {name} must be an integer, got {text!r}") from None


def world_from_env(env: Mapping[str, str] | None = None) -> World:
    """The :class:`World` that ``torchrun`` describes in the environment (a single process without it).

    Raises:
        InputError: the variables are not integers, the rank is outside the world, or ``MASTER_ADDR`` /
            ``MASTER_PORT`` are missing for more than one process.
    """
    env = os.environ if env is None else env
    size = _int_env(env, "WORLD_SIZE", 1)
    rank = _int_env(env, "RANK", 0)
    local = _int_env(env, "LOCAL_RANK", rank)
    if size < 1 or not 0 <= rank < size or local < 0:
        raise InputError(f"RANK={rank}, LOCAL_RANK={local} and WORLD_SIZE={size} do not describe a process of a run "
                         "(0 <= RANK < WORLD_SIZE)")
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if size > 1 and not env.get(name)]
    if missing:
        raise InputError(f"WORLD_SIZE={size} but {' and '.join(missing)} not set: start the processes with torchrun "
                         "or edgeser distill --nproc")
    return World(rank, size, local)


def placement(world: World, device: str, precision: str) -> Placement:
    """Where this process trains: ``--device`` resolved, with ``cuda`` / ``auto`` taking the GPU of the local rank.

    Raises:
        InputError: see :func:`edgeser.devices.resolve`; also ``cuda:N`` with several processes (they would
            share one GPU) or fewer GPUs on this machine than processes on it.
    """
    chosen = resolve(device, precision)
    if not (world.distributed and chosen.is_cuda):
        return chosen
    if str(device).strip().lower().startswith("cuda:"):
        raise InputError(f"--device {device} names one GPU, but the run has {world.size} processes: use --device "
                         "cuda (each process takes the GPU of its local rank)")
    import torch

    count = torch.cuda.device_count()
    if world.local_rank >= count:
        raise InputError(f"local rank {world.local_rank} needs GPU cuda:{world.local_rank}, but this machine has "
                         f"{count}: start at most {count} process(es) per machine")
    return Placement(f"cuda:{world.local_rank}", chosen.precision)


@contextmanager
def process_group(world: World, where: Placement) -> Iterator[None]:
    """Join the run's process group for the duration (gloo on the CPU, nccl on CUDA); nothing for one process.

    Raises:
        InputError: the processes cannot meet (``MASTER_ADDR:MASTER_PORT`` unreachable, a rank missing).
    """
    if not world.distributed:
        yield
        return
    import torch
    import torch.distributed as dist

    if where.is_cuda:
        torch.cuda.set_device(where.index)
    try:
        dist.init_process_group("nccl" if where.is_cuda else "gloo", rank=world.rank, world_size=world.size,
                                timeout=TIMEOUT)
    except (RuntimeError, ValueError) as exc:  # DistError is a RuntimeError
        where_to = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
        raise InputError(f"rank {world.rank} cannot join the run's other processes at {where_to} "
                         f"({_first_line(exc)})") from None
    try:
        yield
    finally:
        dist.destroy_process_group()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


@contextmanager
def collective_errors(world: World) -> Iterator[None]:
    """Turn a failed collective step (another process died or timed out) into one line naming this rank."""
    if not world.distributed:
        yield
        return
    import torch.distributed as dist

    try:
        yield
    except dist.DistError as exc:
        raise EdgeserError(f"rank {world.rank} lost the run's other processes (one failed or stopped: see its "
                           f"error): {_first_line(exc)}") from None


def shard(order: np.ndarray, world: World) -> np.ndarray:
    """This rank's part of one epoch's window order, split as ``DistributedSampler`` splits it.

    The order is padded by repeating its start to a multiple of the world size, then rank ``r`` takes every
    ``size``-th window from position ``r``: every rank gets the same number of windows (so the same number of
    steps), and one process gets the whole order unchanged.
    """
    if not world.distributed:
        return order
    total = -(-len(order) // world.size) * world.size
    return np.resize(order, total)[world.rank :: world.size]


def shard_length(windows: int, world: World) -> int:
    """How many windows each rank trains on per epoch when the epoch has ``windows``."""
    return -(-windows // world.size)


def wrap(model: Any, world: World, where: Placement) -> Any:
    """The module that the training steps call: ``model`` itself for one process, else its DDP wrapper.

    DDP copies rank 0's weights and buffers to every rank when it is built and averages the gradients in
    every backward pass. It does not copy the buffers before every forward pass (one more collective per
    step): in training, batch norm normalises with each batch's own statistics, so the running statistics
    do not change the steps; :func:`follow_rank0` copies rank 0's after every epoch.
    """
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[where.index] if where.is_cuda else None,
                                   forward_sync_buffers=False)


def sum_over_ranks(world: World, where: Placement, *values: float) -> list[float]:
    """``values`` summed over all ranks (unchanged for one process)."""
    if not world.distributed:
        return list(values)
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=where.torch_device())
    dist.all_reduce(t)
    return [float(v) for v in t.cpu()]


def follow_rank0(world: World, model: Any, *averages: Any) -> None:
    """Copy rank 0's buffers of ``model`` (its weights are the same everywhere) and everything of the moving
    ``averages`` into the same tensors of every rank: one broadcast per dtype."""
    if not world.distributed:
        return
    import torch
    import torch.distributed as dist

    tensors = list(model.buffers())
    tensors += [t for average in averages for t in average.state_dict().values()]  # the modules' own storage
    groups: dict[tuple[Any, Any], list[Any]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    for group in groups.values():
        flat = torch.cat([t.detach().reshape(-1) for t in group])
        dist.broadcast(flat, src=0)
        for t, part in zip(group, torch.split(flat, [t.numel() for t in group]), strict=True):
            t.detach().copy_(part.view_as(t))


def barrier(world: World) -> None:
    """Wait until every rank got here."""
    if world.distributed:
        import torch.distributed as dist

        dist.barrier()


def gather(world: World, value: Any) -> list[Any]:
    """Every rank's ``value`` (picklable), in rank order, on every rank."""
    if not world.distributed:
        return [value]
    import torch.distributed as dist

    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, value)
    return out


def fingerprint(model: Any) -> str:
    """sha256 of a model's weights and buffers as a checkpoint stores them (by sorted name; the batch-norm
    step counters, which checkpoints leave out, are left out; -0.0 counts as 0.0, which a moving average of a
    constant buffer turns it into)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name.endswith("num_batches_tracked"):
            continue
        h.update(name.encode())
        h.update((tensor.detach().float().cpu() + 0.0).contiguous().numpy().tobytes())
    return h.hexdigest()


def check_agreement(world: World, model: Any, evaluated: Any) -> None:
    """Compare every rank's final weights with rank 0's (and write them for :data:`FINGERPRINTS_ENV`).

    Raises:
        EdgeserError: a rank ended with other weights than rank 0 (the run's checkpoints are rank 0's).
    """
    folder = os.environ.get(FINGERPRINTS_ENV)
    if not (world.distributed or folder):
        return
    mine = {"rank": world.rank, "world_size": world.size, "model": fingerprint(model),
            "evaluated": fingerprint(evaluated)}
    if folder:
        from ..fileio import replacing

        path = Path(folder) / f"rank{world.rank}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path, suffix=".json") as tmp:
            Path(tmp).write_text(json.dumps(mine), encoding="utf-8")
    everyone = gather(world, mine)
    differ = [m["rank"] for m in everyone if (m["model"], m["evaluated"]) != (everyone[0]["model"],
                                                                             everyone[0]["evaluated"])]
    if differ:
        raise EdgeserError(f"the run's {world.size} processes ended with different weights (rank(s) "
                           f"{', '.join(map(str, differ))} differ from rank 0); the checkpoints are rank 0's")
