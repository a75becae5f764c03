"""The distillation losses: 1 - CCC, mean squared error, or their sum, weighted per dimension."""

from __future__ import annotations

import torch

__all__ = ["ccc_loss"]


def ccc_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """1 - CCC, per column of (B, D) batches, averaged over the columns (weighted by ``weights``)."""
    pm, tm = pred.mean(0), target.mean(0)
    pv, tv = pred.var(0, unbiased=False), target.var(0, unbiased=False)
    cov = ((pred - pm) * (target - tm)).mean(0)
    per_column = 1.0 - 2.0 * cov / (pv + tv + (pm - tm) ** 2 + 1e-8)
    return per_column.mean() if weights is None else (per_column * weights).sum() / weights.sum()


def _loss(kind: str, pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The loss ``kind`` (one of :data:`~edgeser.distill.config.LOSSES`) of (B, 3) predictions, weighted per column."""
    if kind == "ccc":
        return ccc_loss(pred, target, weights)
    mse = (((pred - target) ** 2).mean(0) * weights).sum() / weights.sum()
    return mse if kind == "mse" else mse + ccc_loss(pred, target, weights)
