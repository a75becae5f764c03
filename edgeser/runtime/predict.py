"""Per-file prediction shared by the device runner and ``edgeser predict``: windows plus their mean."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .engine import Runner

__all__ = ["Prediction", "predict_signal"]

BATCH_WINDOWS = 8


@dataclass
class Prediction:
    """A/D/V for each window of a signal and their mean."""

    windows: np.ndarray
    """(W, 3) one row per window."""
    starts_s: np.ndarray
    """(W,) start time of each window in seconds."""

    @property
    def mean(self) -> np.ndarray:
        return self.windows.mean(axis=0)


def predict_signal(runner: Runner, signal: np.ndarray) -> Prediction:
    """Predict A/D/V for a whole signal.

    Signals up to 1.5 windows long run in one pass (the ONNX models accept any length; fixed-length
    models are padded or cut by their runner). Longer signals are cut into non-overlapping windows of
    ``spec.window_samples``; a tail shorter than half a window is dropped, a longer one is its own window.
    """
    spec = runner.spec
    win = spec.window_samples
    signal = np.asarray(signal, dtype=np.float32)
    if len(signal) <= win * 3 // 2:
        return Prediction(runner(signal)[None], np.zeros(1))
    starts = list(range(0, len(signal) - win + 1, win))
    tail = len(signal) - (starts[-1] + win)
    if tail >= win // 2:
        starts.append(len(signal) - win)
    frames = np.stack([signal[s:s + win] for s in starts])
    rows = [runner.predict(frames[i:i + BATCH_WINDOWS]) for i in range(0, len(frames), BATCH_WINDOWS)]
    return Prediction(np.concatenate(rows), np.asarray(starts, dtype=np.float64) / spec.sampling_rate)
