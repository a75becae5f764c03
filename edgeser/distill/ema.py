"""An exponential moving average of the student's weights, validated and saved instead of the last step's."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["moving_average"]


def _ema_step(decay: float) -> Any:
    """An AveragedModel ``avg_fn``: EMA whose decay ramps up as (1 + n) / (10 + n) to ``decay``.

    Without the ramp a run from random weights would average in its first, random steps for a long time
    (0.998 ** 500 is still 0.37): validated early, such an average predicts a constant.
    """

    def step(averaged: torch.Tensor, current: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        d = min(decay, (1.0 + float(n)) / (10.0 + float(n)))
        return averaged + (current - averaged) * (1.0 - d)

    return step


def moving_average(model: torch.nn.Module, decay: float) -> Any:
    """A torch ``AveragedModel`` of ``model`` (buffers included) with the ramped decay of :func:`_ema_step`."""
    from torch.optim.swa_utils import AveragedModel

    return AveragedModel(model, avg_fn=_ema_step(decay), use_buffers=True)
