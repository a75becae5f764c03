"""Build side of the bundle's self-test: choose held-out windows and record what the build host computes.

The device side, which stores, reads and judges them, is :mod:`edgeser.runtime.selftest`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DriftError
from .runtime.selftest import SelfTestResult, as_pcm16, judge, predict_windows, write_selftest

__all__ = ["SELFTEST_WINDOWS", "SelfTestData", "prepare", "write"]

SELFTEST_WINDOWS = 8
"""Held-out windows kept in a bundle (16-bit PCM at 16 kHz: 32 KB per second of window)."""


@dataclass
class SelfTestData:
    """The windows and the build host's outputs on them."""

    windows: np.ndarray
    outputs: dict[str, np.ndarray]
    variant: str
    budget: dict[str, float]
    host: SelfTestResult
    """The self-test judged on the build host: must pass, or the bundle would fail its own check."""


def choose(teacher_labels: np.ndarray, count: int = SELFTEST_WINDOWS) -> np.ndarray:
    """Indices of ``count`` evaluation windows spread over the teacher's arousal range (evenly spaced ranks),
    so that the CCC of a few windows is well conditioned."""
    order = np.argsort(teacher_labels[:, 0], kind="stable")
    picks = np.linspace(0, len(order) - 1, num=min(count, len(order))).round().astype(int)
    return np.sort(order[np.unique(picks)])


def prepare(eval_windows: np.ndarray, eval_labels: np.ndarray, *, teacher: Any, float_path: Path,
            shipped_path: Path, variant: str, budget: dict[str, float], threads: int = 1) -> SelfTestData:
    """Pick the self-test windows, store them as the bundle will (16-bit PCM), and run the float model, the
    teacher and the shipped model on exactly those samples through the runtime.

    Raises:
        DriftError: the shipped model fails the self-test on the build host itself.
    """
    from .runtime.engine import open_model

    windows = as_pcm16(eval_windows[choose(eval_labels)])
    outputs = {"float": predict_windows(open_model(float_path, threads=threads), windows),
               "teacher": np.asarray(teacher(windows), dtype=np.float32),
               "shipped": predict_windows(open_model(shipped_path, threads=threads), windows)}
    host = judge(outputs["shipped"], {**outputs, "budget": budget, "variant": variant})
    if not host.passed:
        failing = "; ".join(f"{r.dimension}: {', '.join(r.reasons)}" for r in host.rows if not r.passed)
        raise DriftError(f"the bundle's self-test fails on the build host ({len(windows)} held-out windows): "
                         f"{failing}")
    return SelfTestData(windows, outputs, variant, budget, host)


def write(folder: Path, data: SelfTestData, *, sampling_rate: int) -> dict[str, Any]:
    """Write the self-test files into the bundle folder; returns the manifest's ``selftest`` entry."""
    entry = write_selftest(folder, data.windows, data.outputs, variant=data.variant, budget=data.budget,
                           sampling_rate=sampling_rate)
    return {**entry, "host": data.host.to_dict()}
