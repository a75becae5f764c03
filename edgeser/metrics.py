"""Agreement metrics per dimension: concordance correlation coefficient (CCC), Pearson, MAE."""

from __future__ import annotations

from typing import cast

import numpy as np

from .runtime.metrics import ccc
from .runtime.metrics import pair as _pair
from .runtime.spec import DIMENSIONS

__all__ = ["DIMENSIONS", "ccc", "pearson", "mae", "agreement"]


def pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation per column (0 where either column is constant).

    Examples:
        >>> round(float(pearson([1.0, 2.0, 3.0], [2.0, 4.0, 6.5])[0]), 4)
        0.9979
    """
    x, y = _pair(x, y)
    xc, yc = x - x.mean(0), y - y.mean(0)
    den = np.sqrt((xc**2).sum(0) * (yc**2).sum(0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, (xc * yc).sum(0) / np.where(den > 0, den, 1.0), 0.0)


def mae(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean absolute error per column.

    Examples:
        >>> float(mae([1.0, 2.0], [2.0, 4.0])[0])
        1.5
    """
    x, y = _pair(x, y)
    return cast(np.ndarray, np.abs(x - y).mean(0))


def agreement(x: np.ndarray, y: np.ndarray) -> dict[str, dict[str, float]]:
    """CCC, Pearson and MAE per A/D/V dimension, as a plain dict for reports and manifests."""
    c, p, m = ccc(x, y), pearson(x, y), mae(x, y)
    return {
        dim: {"ccc": float(c[i]), "pearson": float(p[i]), "mae": float(m[i])}
        for i, dim in enumerate(DIMENSIONS)
    }
