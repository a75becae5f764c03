"""The Teacher protocol and helpers shared by the loaders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import InputError
from ..runtime.spec import DIMENSIONS

__all__ = ["Teacher", "check_output", "label_order"]


@runtime_checkable
class Teacher(Protocol):
    """Anything that labels 16 kHz waveforms with arousal, dominance, valence (in that order, about 0..1)."""

    name: str
    """Short human-readable name, shown in reports."""
    identity: str
    """Stable identity of the weights (a content hash); labelling caches are keyed by it."""
    sample_rate: int
    """Input rate in Hz (:data:`edgeser.runtime.spec.SAMPLING_RATE` for every teacher edgeser loads)."""

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, T) -> float32 (N, 3).

        A teacher with ``padding_aware = True`` also takes ``lengths`` (N,), the valid samples of each clip
        in a zero-padded batch, and labels a padded clip as if it were alone.
        """
        ...


def label_order(labels: Sequence[str], *, what: str, path: Path) -> list[int]:
    """Indices that put outputs named ``labels`` (lower case) in arousal, dominance, valence order.

    Args:
        labels: the model's output names, in its own order.
        what: how the error names the labels' source (e.g. ``id2label``).
        path: the file that lists them.

    Raises:
        InputError: the labels are not the three dimensions in some order.
    """
    if sorted(labels) != sorted(DIMENSIONS):
        raise InputError(f"{what} names {list(labels)}, expected {list(DIMENSIONS)} in some order", path=path)
    return [list(labels).index(d) for d in DIMENSIONS]


def check_output(out: np.ndarray, n: int, source: str) -> np.ndarray:
    """Validate a teacher's output: (n, 3) and finite."""
    out = np.asarray(out, dtype=np.float32)
    if out.ndim != 2 or out.shape != (n, len(DIMENSIONS)):
        raise ValueError(f"{source}: teacher returned shape {out.shape}, expected ({n}, {len(DIMENSIONS)})")
    if not np.isfinite(out).all():
        raise ValueError(f"{source}: teacher returned NaN or infinite values")
    return out
