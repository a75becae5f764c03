"""Agreement metrics per dimension: concordance correlation coefficient (CCC), Pearson, MAE."""

from __future__ import annotations

import numpy as np

from .runtime.spec import DIMENSIONS

__all__ = ["DIMENSIONS", "ccc", "pearson", "mae", "agreement"]


def _pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {x.shape} vs {y.shape}")
    if x.ndim == 1:
        x, y = x[:, None], y[:, None]
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"expected (N, D) with N >= 2, got {x.shape}")
    return x, y


def ccc(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Lin's concordance correlation coefficient per column.

    ``2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))**2)``, population (biased) moments.

    Args:
        x: predictions, shape (N,) or (N, D).
        y: references, same shape.

    Returns:
        float64 array of shape (D,). A column where both inputs are constant and equal scores 1.

    Raises:
        ValueError: if the shapes differ or N < 2.

    Examples:
        >>> float(ccc([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])[0])
        1.0
        >>> round(float(ccc([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])[0]), 4)
        0.5714
    """
    x, y = _pair(x, y)
    mx, my = x.mean(0), y.mean(0)
    vx, vy = x.var(0), y.var(0)
    cov = ((x - mx) * (y - my)).mean(0)
    den = vx + vy + (mx - my) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, 2 * cov / np.where(den > 0, den, 1.0), 1.0)
    return out


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
    return np.abs(x - y).mean(0)


def agreement(x: np.ndarray, y: np.ndarray) -> dict[str, dict[str, float]]:
    """CCC, Pearson and MAE per A/D/V dimension, as a plain dict for reports and manifests."""
    c, p, m = ccc(x, y), pearson(x, y), mae(x, y)
    return {
        dim: {"ccc": float(c[i]), "pearson": float(p[i]), "mae": float(m[i])}
        for i, dim in enumerate(DIMENSIONS)
    }
