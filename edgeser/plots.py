"""Scatter plots of predictions against references, the one plotting helper of the build and evaluate reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Panel", "save_scatter"]


@dataclass(frozen=True)
class Panel:
    """One scatter: ``y`` against ``x`` with the line y = x, titled with its score."""

    x: np.ndarray
    y: np.ndarray
    xlabel: str
    ylabel: str
    title: str
    color: str = "#1f77b4"


def save_scatter(path: Path, panels: list[Panel]) -> Path:
    """Draw the panels side by side (3.6 x 3.6 in each, 100 dpi) and save a PNG at ``path``.

    Non-finite predictions are left out of the axis range (they cannot be drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.6), dpi=100, squeeze=False)
    for ax, p in zip(axes[0], panels, strict=True):
        ax.scatter(p.x, p.y, s=8, alpha=0.6, color=p.color)
        finite = np.isfinite(p.y)
        both = np.concatenate([p.x, p.y[finite]]) if finite.any() else np.asarray(p.x)
        lo, hi = float(both.min()), float(both.max())
        ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--")
        ax.set_title(p.title, fontsize=9)
        ax.set_xlabel(p.xlabel, fontsize=8)
        ax.set_ylabel(p.ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
