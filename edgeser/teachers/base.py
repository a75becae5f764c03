"""The Teacher protocol and helpers shared by the loaders."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Teacher", "file_digest", "check_output"]


@runtime_checkable
class Teacher(Protocol):
    """Anything that labels 16 kHz waveforms with arousal, dominance, valence (in that order, about 0..1)."""

    name: str
    """Short human-readable name, shown in reports."""
    identity: str
    """Stable identity of the weights (a content hash); labelling caches are keyed by it."""
    sample_rate: int
    """Input rate in Hz (16000 for every teacher edgeser loads)."""

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, T) -> float32 (N, 3)."""
        ...


def file_digest(*paths: str | Path, length: int = 16) -> str:
    """sha256 over the bytes of one or more files, hex, shortened to ``length``."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:length]


def check_output(out: np.ndarray, n: int, source: str) -> np.ndarray:
    """Validate a teacher's output: (n, 3) and finite."""
    out = np.asarray(out, dtype=np.float32)
    if out.ndim != 2 or out.shape != (n, 3):
        raise ValueError(f"{source}: teacher returned shape {out.shape}, expected ({n}, 3)")
    if not np.isfinite(out).all():
        raise ValueError(f"{source}: teacher returned NaN or infinite values")
    return out
