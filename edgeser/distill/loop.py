"""The training loop: epochs of augmented steps, each followed by validation and checkpoints.

Each epoch has two halves: :func:`_train_epoch` (the steps: every process of a run does these, each on its
shard of the windows) and :func:`_validate_and_save` (scores on the held-out speakers, the history, the
checkpoints: rank 0 alone, while the other processes wait). :mod:`.ddp` has the distributed parts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..audio import SAMPLING_RATE
from ..devices import Placement, autocast
from ..errors import EdgeserError, InputError
from ..labelfile import LabelTable, read_labels
from ..metrics import DIMENSIONS, ccc
from ..progress import Reporter, silent
from .checkpoint import _checkpoint, _facts, _rank_state, _resume, checkpoint_paths
from .config import DistillConfig
from .data import choose_val_speakers, load_windows
from .ddp import (
    CPU,
    World,
    barrier,
    check_agreement,
    collective_errors,
    follow_rank0,
    gather,
    placement,
    process_group,
    shard,
    shard_length,
    sum_over_ranks,
    world_from_env,
    wrap,
)
from .loss import _loss
from .run import _new_run, _online_teacher, _Run

__all__ = ["DistillResult", "distill", "EVAL_BATCH"]

EVAL_BATCH = 64
"""Windows per forward pass during validation."""


@dataclass
class DistillResult:
    """What a distillation run produced."""

    best: Path
    """Checkpoint of the best epoch (highest mean validation CCC)."""
    last: Path
    """Checkpoint of the last epoch."""
    best_epoch: int
    """1-based epoch of the best checkpoint."""
    best_ccc: dict[str, float]
    """Validation CCC(student, teacher) per dimension at the best epoch."""
    history: list[dict[str, Any]]
    """Per epoch: epoch, train loss, validation CCC per dimension, seconds."""
    train_windows: int
    """Windows trained on."""
    val_windows: int
    """Windows validated on."""
    val_speakers: list[str]
    """Held-out speakers (or held-out files when speakers are unknown)."""
    rank: int = 0
    """The process that returned this (only rank 0's history and scores are filled in)."""
    world_size: int = 1
    """Processes that trained together (DDP)."""


def _predict(model: Any, x: np.ndarray, where: Placement = CPU) -> np.ndarray:
    """The model's (N, 3) outputs for (N, T) windows, in eval mode, :data:`EVAL_BATCH` at a time."""
    model.eval()
    device = where.torch_device()
    with torch.no_grad(), autocast(where):
        return np.concatenate([model(torch.from_numpy(x[i : i + EVAL_BATCH]).to(device)).float().cpu().numpy()
                               for i in range(0, len(x), EVAL_BATCH)])


def _step(run: _Run, config: DistillConfig, xb: np.ndarray, yb: np.ndarray, weights: torch.Tensor) -> torch.Tensor:
    """One optimiser step on a batch (autocast and gradient scaling on CUDA when asked); returns the loss."""
    device = run.placement.torch_device()
    with autocast(run.placement):
        pred = run.net(torch.from_numpy(xb).to(device))  # (B, 3)
    loss = _loss(config.loss, pred.float(), torch.from_numpy(yb).to(device), weights)
    run.opt.zero_grad()
    if run.scaler is None:
        loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward has no annotations
        run.opt.step()
    else:
        run.scaler.scale(loss).backward()
        run.scaler.step(run.opt)
        run.scaler.update()
    return loss


def _train_epoch(
    run: _Run, x: np.ndarray, y: np.ndarray, config: DistillConfig, window: int,
    on_step: Callable[[int, float], None],
) -> float:
    """One epoch of steps over this rank's shard of the (augmented) training windows; returns the mean loss
    (over all ranks)."""
    run.model.train()
    weights = torch.tensor(config.loss_weights, dtype=torch.float32, device=run.placement.torch_device())
    order = shard(run.rng.permutation(len(x))[: config.windows_per_epoch or len(x)], run.world)
    total, seen = 0.0, 0
    for start in range(0, len(order), config.batch_size):
        idx = order[start : start + config.batch_size]
        if len(idx) < 2:  # BatchNorm and the CCC loss need two windows
            continue
        xb, yb = run.aug.batch([x[i] for i in idx], y[idx], window)
        if run.teacher is not None:
            try:
                yb = np.asarray(run.teacher(xb), dtype=np.float32)
            except ValueError as exc:
                raise InputError(f"the teacher failed on a training batch: {exc}") from None
        loss = _step(run, config, xb, yb, weights)
        run.sched.step()
        if run.ema is not None:
            run.ema.update_parameters(run.model)
        total += float(loss.detach()) * len(idx)
        seen += len(idx)
        on_step(len(idx), total / seen)
    total, count = sum_over_ranks(run.world, run.placement, total, seen)  # float sums over the ranks
    return total / max(count, 1)


@dataclass(frozen=True)
class _Split:
    """The windows and labels of both sides of the speaker split, and where the run is saved."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    held: list[str]
    table: LabelTable
    out: Path


def _validate_and_save(run: _Run, split: _Split, config: DistillConfig, epoch: int, loss: float,
                       seconds: float, ranks: list[dict[str, Any]] | None = None) -> dict[str, float]:
    """Score the evaluated model on the held-out windows, record the epoch, write the checkpoints."""
    predicted = _predict(run.evaluated, split.x_val, run.placement)
    scores = dict(zip(DIMENSIONS, map(float, ccc(predicted, split.y_val)), strict=True))
    run.history.append(
        {
            "epoch": epoch,
            "loss": loss,
            "val_ccc": scores,
            "val_mean": float(np.mean(list(scores.values()))),
            "seconds": seconds,
        }
    )
    facts = _facts(config, split.table, split.held, run, epoch, scores, len(split.x_train), len(split.x_val))
    _checkpoint(run, split.out, epoch, scores, config, facts, ranks)
    return scores


def _epochs(run: _Run, split: _Split, config: DistillConfig, window: int, progress: Reporter) -> None:
    """Train from ``run.start_epoch + 1`` to ``config.epochs``, validating and checkpointing each epoch."""
    per_epoch = min(len(split.x_train), config.windows_per_epoch or len(split.x_train))
    for epoch in range(run.start_epoch + 1, config.epochs + 1):
        t0 = time.monotonic()
        before = f"val CCC {run.history[-1]['val_mean']:.3f}" if run.history else ""
        task = progress.start(f"epoch {epoch}/{config.epochs}", per_epoch, info=before)

        def step(n: int, avg: float, task: int = task, before: str = before) -> None:
            progress.advance(task, n, info=f"loss {avg:.4f} {before}")

        loss = _train_epoch(run, split.x_train, split.y_train, config, window, step)
        follow_rank0(run.world, run.model, *([] if run.ema is None else [run.ema]))
        ranks = gather(run.world, _rank_state(run)) if run.world.distributed else None
        if run.world.main:
            scores = _validate_and_save(run, split, config, epoch, loss, time.monotonic() - t0, ranks)
            shown = " ".join(f"{d[0].upper()} {s:.3f}" for d, s in scores.items())
            progress.note(task, f"loss {loss:.4f} val CCC {shown}")
        barrier(run.world)  # the others wait while rank 0 validates and writes


def distill(
    labels: str | Path | LabelTable,
    out: str | Path,
    *,
    config: DistillConfig | None = None,
    resume: bool = False,
    device: str = "auto",
    precision: str = "fp32",
    progress: Reporter = silent,
) -> DistillResult:
    """Train a student on teacher labels; keep the best and the last epoch.

    Started by ``torchrun`` (or by :func:`~edgeser.distill.distill_processes`), every process of the run calls
    this: they train together with DDP (see :mod:`edgeser.distill.ddp`) and rank 0 validates, reports and writes.

    Args:
        labels: a labels CSV from ``edgeser label`` (or an already read :class:`LabelTable`).
        out: where the best checkpoint goes (``.safetensors``); the last epoch and the training state are
            written beside it (:func:`checkpoint_paths`).
        config: student, schedule, loss, split and augmentation.
        resume: continue a run that stopped (reads the last checkpoint and state beside ``out``).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` for the student (see :func:`edgeser.devices.resolve`;
            with several processes ``cuda`` means the GPU of each process's local rank).
        precision: ``fp32``, or ``bf16`` / ``fp16`` autocast on CUDA (the weights stay fp32).
        progress: where the reading of the audio and each epoch (loss, validation CCC) are reported
            (:func:`edgeser.progress.progress_bars` shows them on stderr); rank 0 only.

    Raises:
        InputError: bad labels (columns, NaN, missing or changed audio), an unknown student or loss, a split
            that leaves no training or no validation data, nothing to resume, a device this machine lacks, or
            processes that cannot meet.
        OutputError: a checkpoint cannot be written.
    """
    config = config or DistillConfig()
    config.validate()
    world = world_from_env()
    where = placement(world, device, precision)
    torch.set_num_threads(config.threads)
    try:
        with process_group(world, where), collective_errors(world):
            return _distill(labels, Path(out), config, resume, world, where, progress if world.main else silent,
                            device)
    except EdgeserError as exc:
        if world.rank == 0:
            raise
        named = type(exc)(f"rank {world.rank}: {exc.message}")
        named.path = exc.path
        raise named from None


def _distill(labels: str | Path | LabelTable, out: Path, config: DistillConfig, resume: bool, world: World,
             where: Placement, progress: Reporter, asked: str) -> DistillResult:
    table = labels if isinstance(labels, LabelTable) else read_labels(labels)
    val_mask, held = choose_val_speakers(table, config)
    given = int(round(config.window_seconds * SAMPLING_RATE)) if config.window_seconds else None
    x = load_windows(table, given, progress=progress)  # None: the table's longest window
    split = _Split(x[~val_mask], table.targets[~val_mask], x[val_mask], table.targets[val_mask], held, table, out)
    per_rank = shard_length(min(len(split.x_train), config.windows_per_epoch or len(split.x_train)), world)
    teacher = _online_teacher(config, table, where, asked)
    run = _new_run(config, max(1, per_rank // config.batch_size), teacher, placement=where, world=world)
    if resume:
        _resume(run, out, config)
        if run.start_epoch >= config.epochs:
            raise InputError(
                f"nothing to do: the saved run already finished {run.start_epoch} epochs "
                "(raise --epochs to train longer)",
                path=out,
            )
    run.net = wrap(run.model, world, where)
    if world.main:
        out.parent.mkdir(parents=True, exist_ok=True)
    _epochs(run, split, config, x.shape[1], progress)
    check_agreement(world, run.model, run.evaluated)
    best = run.history[run.best_epoch - 1]["val_ccc"] if run.best_epoch else {}
    return DistillResult(out, checkpoint_paths(out)[0], run.best_epoch, best, run.history, len(split.x_train),
                         len(split.x_val), held, world.rank, world.size)
