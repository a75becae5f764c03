"""Agreement between two sets of A/D/V outputs, in numpy alone: the device's self-test and the host share it.

The host's :mod:`edgeser.metrics` re-exports :func:`ccc` and adds Pearson, MAE and tables.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ccc", "pair"]


def pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as float64 (N, D), checked to match, with N >= 2.

    Raises:
        ValueError: if the shapes differ or N < 2.
    """
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
    x, y = pair(x, y)
    mx, my = x.mean(0), y.mean(0)
    vx, vy = x.var(0), y.var(0)
    cov = ((x - mx) * (y - my)).mean(0)
    den = vx + vy + (mx - my) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, 2 * cov / np.where(den > 0, den, 1.0), 1.0)
    return out
