"""Per-file prediction shared by the device runner and ``edgeser predict``: windows plus their mean."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from .spec import Runner

__all__ = ["Prediction", "predict_signal", "predict_file", "predict_blocks", "BATCH_WINDOWS"]

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
        return cast(np.ndarray, self.windows.mean(axis=0))


def predict_signal(runner: Runner, signal: np.ndarray) -> Prediction:
    """Predict A/D/V for a whole signal in memory (see :func:`predict_blocks` for the windowing)."""
    return predict_blocks(runner, [np.asarray(signal, dtype=np.float32)])


def predict_file(runner: Runner, path: str | Path) -> Prediction:
    """Predict A/D/V for an audio file read block by block, so memory stays flat however long it is.

    Raises:
        AudioError: the file breaks a rule of :mod:`edgeser.runtime.audiofile`.
    """
    from .audiofile import blocks

    return predict_blocks(runner, blocks(path, runner.spec.sampling_rate))


def predict_blocks(runner: Runner, blocks: Iterable[np.ndarray]) -> Prediction:
    """Predict A/D/V for a signal given as consecutive blocks of any sizes.

    Signals up to 1.5 windows long run in one pass (the ONNX models accept any length; fixed-length
    models are padded or cut by their runner). Longer signals are cut into non-overlapping windows of
    ``spec.window_samples``; a tail shorter than half a window is dropped, a longer one is its own window,
    ending with the signal. Windows run in batches of :data:`BATCH_WINDOWS`; only one window and one batch
    are held at a time.
    """
    win = runner.spec.window_samples
    head: list[np.ndarray] = []
    held = 0
    it = iter(blocks)
    for block in it:
        head.append(np.asarray(block, dtype=np.float32))
        held += len(head[-1])
        if held > win * 3 // 2:
            break
    else:
        return Prediction(runner(np.concatenate(head))[None], np.zeros(1))
    return _windowed(runner, np.concatenate(head), it)


def _windowed(runner: Runner, pending: np.ndarray, rest: Iterator[np.ndarray]) -> Prediction:
    """Cut ``pending`` and then the blocks of ``rest`` into windows as they arrive."""
    win = runner.spec.window_samples
    frames: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    starts: list[int] = []
    pending, last = _cut(runner, pending, frames, rows, starts, pending[:0])
    for block in rest:
        pending = np.concatenate([pending, np.asarray(block, dtype=np.float32)])
        pending, last = _cut(runner, pending, frames, rows, starts, last)
    tail = len(pending)
    if tail >= win // 2:
        frames.append(np.concatenate([last[tail:], pending]))  # the signal's last ``win`` samples
        starts.append(starts[-1] + tail)
    if frames:
        rows.append(runner.predict(np.stack(frames)))
    return Prediction(np.concatenate(rows), np.asarray(starts, dtype=np.float64) / runner.spec.sampling_rate)


def _cut(runner: Runner, pending: np.ndarray, frames: list[np.ndarray], rows: list[np.ndarray],
         starts: list[int], last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move every whole window of ``pending`` into ``frames`` (predicting each full batch).

    Returns:
        the samples left over, and the latest whole window (``last`` when none was cut).
    """
    win = runner.spec.window_samples
    taken = 0
    while len(pending) - taken >= win:
        last = pending[taken:taken + win]
        frames.append(last)
        starts.append(starts[-1] + win if starts else 0)
        taken += win
        if len(frames) == BATCH_WINDOWS:
            rows.append(runner.predict(np.stack(frames)))
            frames.clear()
    return pending[taken:].copy(), last
