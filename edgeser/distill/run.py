"""The state one training run carries between epochs, and how a fresh run is set up."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..augment import Augmenter
from ..devices import Placement
from ..errors import InputError
from ..labelfile import LabelTable
from .config import DistillConfig
from .ddp import CPU, SINGLE, World
from .ema import moving_average

__all__ = ["WARMUP_FRACTION"]

WARMUP_FRACTION = 0.05
"""Share of the steps with a linear learning-rate warm-up before the cosine decay."""


@dataclass
class _Run:
    """Everything one training run carries between epochs."""

    model: Any
    """The trained weights."""
    teacher: Any
    """The teacher that labels augmented windows online, or None."""
    ema: Any
    """The moving average of the model's weights (a torch AveragedModel), or None."""
    opt: Any
    sched: Any
    aug: Augmenter
    rng: np.random.Generator
    history: list[dict[str, Any]]
    best: float = -math.inf
    best_epoch: int = 0
    start_epoch: int = 0
    placement: Placement = CPU
    """Where the student trains (and in which precision)."""
    world: World = SINGLE
    """This process's rank among the run's processes."""
    net: Any = None
    """The module the training steps call: the model, or its DistributedDataParallel wrapper."""
    scaler: Any = None
    """The fp16 gradient scaler (fp16 on CUDA only), or None."""

    @property
    def evaluated(self) -> Any:
        """The model that is validated and saved: the moving average when there is one."""
        return self.model if self.ema is None else self.ema.module


def _schedule(total_steps: int) -> Any:
    """LambdaLR factor: linear warm-up over :data:`WARMUP_FRACTION` of the steps, then cosine decay to 0."""
    warm = max(1, int(WARMUP_FRACTION * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))

    return factor


def _init_weights(model: Any, path: Path) -> None:
    from .. import models

    source = models.load(path)
    if type(source) is not type(model):
        raise InputError(f"--init is a {source.arch} checkpoint, the student is a {model.arch}", path=path)
    try:
        model.load_state_dict(source.state_dict())
    except RuntimeError as exc:
        raise InputError(f"--init checkpoint does not fit the student: {str(exc).splitlines()[-1].strip()}",
                         path=path) from None


def _online_teacher(config: DistillConfig, table: LabelTable, where: Placement = CPU, asked: str = "cpu") -> Any:
    """The ``--teacher`` that relabels augmented windows (None without one); it must have written the labels.

    It runs on the student's device (``where``), at the precision the labels were made with (fp32 unless
    their teacher identity says bf16 or fp16). With ``--device auto`` (``asked``), a teacher that cannot run on
    CUDA here (an ONNX teacher without onnxruntime-gpu) runs on the CPU instead.
    """
    if not config.teacher:
        return None
    from ..teachers import load_teacher

    reduced = [p for p in ("bf16", "fp16") if table.teacher.endswith(f"-{p}")]
    precision = reduced[0] if reduced and where.is_cuda else "fp32"
    try:
        teacher = load_teacher(config.teacher, threads=config.threads, placement=Placement(where.device, precision))
    except InputError:
        if not (where.is_cuda and str(asked).strip().lower() == "auto"):
            raise
        teacher = load_teacher(config.teacher, threads=config.threads)  # the CPU
    if teacher.identity != table.teacher:
        raise InputError(
            f"--teacher {config.teacher} is {teacher.identity}, but the labels were made by {table.teacher}",
            path=table.path,
        )
    return teacher


def _new_run(config: DistillConfig, steps_per_epoch: int, teacher: Any = None, *,
             placement: Placement = CPU, world: World = SINGLE) -> _Run:
    """A fresh run: seeded student (or ``--init``) on its device, EMA, AdamW, warm-up + cosine schedule,
    augmenter, order RNG.

    Every rank builds the same student and draws the same window order; the augmentation (and torch's
    random numbers after the initialisation) are seeded with ``seed + rank``, so the ranks augment differently.
    """
    from .. import models

    torch.manual_seed(config.seed)
    model = models.create_model(config.student, **config.student_config)
    if config.init:
        _init_weights(model, Path(config.init))
    model = model.to(placement.torch_device())
    if world.rank:
        torch.manual_seed(config.seed + world.rank)
    ema = moving_average(model, config.ema) if config.ema else None
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(config.epochs * steps_per_epoch))
    aug, order = Augmenter(config.augment, seed=config.seed + world.rank), np.random.default_rng(config.seed)
    scaler = torch.amp.GradScaler("cuda") if placement.is_cuda and placement.precision == "fp16" else None
    return _Run(model, teacher, ema, opt, sched, aug, order, [], placement=placement, world=world, net=model,
                scaler=scaler)
