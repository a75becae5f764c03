"""The training loop: epochs of augmented steps, each followed by validation and checkpoints.

Each epoch has two halves: :func:`_train_epoch` (the steps: every worker of a run does these) and
:func:`_validate_and_save` (scores on the held-out speakers, the history, the checkpoints: one writer).
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
from ..errors import InputError
from ..labelfile import LabelTable, read_labels
from ..metrics import DIMENSIONS, ccc
from ..progress import Reporter, silent
from .checkpoint import _checkpoint, _facts, _resume, checkpoint_paths
from .config import DistillConfig
from .data import choose_val_speakers, load_windows
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


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    """The model's (N, 3) outputs for (N, T) windows, in eval mode, :data:`EVAL_BATCH` at a time."""
    model.eval()
    with torch.no_grad():
        return np.concatenate(
            [model(torch.from_numpy(x[i : i + EVAL_BATCH])).numpy() for i in range(0, len(x), EVAL_BATCH)]
        )


def _train_epoch(
    run: _Run, x: np.ndarray, y: np.ndarray, config: DistillConfig, window: int,
    on_step: Callable[[int, float], None],
) -> float:
    """One epoch of steps over (augmented) training windows; returns the mean loss."""
    run.model.train()
    weights = torch.tensor(config.loss_weights, dtype=torch.float32)
    order = run.rng.permutation(len(x))[: config.windows_per_epoch or len(x)]
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
        loss = _loss(config.loss, run.model(torch.from_numpy(xb)), torch.from_numpy(yb), weights)
        run.opt.zero_grad()
        loss.backward()
        run.opt.step()
        run.sched.step()
        if run.ema is not None:
            run.ema.update_parameters(run.model)
        total += float(loss.detach()) * len(idx)
        seen += len(idx)
        on_step(len(idx), total / seen)
    return total / max(seen, 1)


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
                       seconds: float) -> dict[str, float]:
    """Score the evaluated model on the held-out windows, record the epoch, write the checkpoints."""
    scores = dict(zip(DIMENSIONS, map(float, ccc(_predict(run.evaluated, split.x_val), split.y_val)), strict=True))
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
    _checkpoint(run, split.out, epoch, scores, config, facts)
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
        scores = _validate_and_save(run, split, config, epoch, loss, time.monotonic() - t0)
        shown = " ".join(f"{d[0].upper()} {s:.3f}" for d, s in scores.items())
        progress.note(task, f"loss {loss:.4f} val CCC {shown}")


def distill(
    labels: str | Path | LabelTable,
    out: str | Path,
    *,
    config: DistillConfig | None = None,
    resume: bool = False,
    progress: Reporter = silent,
) -> DistillResult:
    """Train a student on teacher labels; keep the best and the last epoch.

    Args:
        labels: a labels CSV from ``edgeser label`` (or an already read :class:`LabelTable`).
        out: where the best checkpoint goes (``.safetensors``); the last epoch and the training state are
            written beside it (:func:`checkpoint_paths`).
        config: student, schedule, loss, split and augmentation.
        resume: continue a run that stopped (reads the last checkpoint and state beside ``out``).
        progress: where the reading of the audio and each epoch (loss, validation CCC) are reported
            (:func:`edgeser.progress.progress_bars` shows them on stderr).

    Raises:
        InputError: bad labels (columns, NaN, missing or changed audio), an unknown student or loss, a split
            that leaves no training or no validation data, or nothing to resume.
        OutputError: a checkpoint cannot be written.
    """
    config = config or DistillConfig()
    config.validate()
    out = Path(out)
    torch.set_num_threads(config.threads)
    table = labels if isinstance(labels, LabelTable) else read_labels(labels)
    val_mask, held = choose_val_speakers(table, config)
    given = int(round(config.window_seconds * SAMPLING_RATE)) if config.window_seconds else None
    x = load_windows(table, given, progress=progress)  # None: the table's longest window
    split = _Split(x[~val_mask], table.targets[~val_mask], x[val_mask], table.targets[val_mask], held, table, out)
    per_epoch = min(len(split.x_train), config.windows_per_epoch or len(split.x_train))
    run = _new_run(config, max(1, per_epoch // config.batch_size), _online_teacher(config, table))
    if resume:
        _resume(run, out, config)
        if run.start_epoch >= config.epochs:
            raise InputError(
                f"nothing to do: the saved run already finished {run.start_epoch} epochs "
                "(raise --epochs to train longer)",
                path=out,
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    _epochs(run, split, config, x.shape[1], progress)
    best = run.history[run.best_epoch - 1]["val_ccc"] if run.best_epoch else {}
    return DistillResult(
        out, checkpoint_paths(out)[0], run.best_epoch, best, run.history, len(split.x_train), len(split.x_val), held
    )
