"""The bundle's self-test: held-out windows and what the build measured on them, run again on the device.

A build keeps a few held-out evaluation windows in the bundle (``selftest/windows.wav``, 16-bit PCM, the
windows one after another) and, in ``selftest/expected.json``, what the build host computed on exactly
those decoded samples: the float model's A/D/V, the teacher's, and the shipped model's. On the device,
:func:`run_selftest` runs the windows through the device's own engine and checks the recipe's drift
budget against the float model: CCC(device, float) >= ``min_ccc_vs_float`` and
|CCC(device, teacher) - CCC(float, teacher)| <= ``max_ccc_drop``, per dimension. It also reports the
largest absolute difference from the float model and from the build host's run of the same model, which
shows how differently this device's kernels round. numpy (+ soundfile to read the windows) only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import ccc
from .spec import DIMENSIONS, Runner

__all__ = ["SELFTEST_AUDIO", "SELFTEST_EXPECTED", "SelfTestRow", "SelfTestResult", "as_pcm16", "judge",
           "write_selftest", "read_selftest", "run_selftest", "predict_windows", "EXIT_SELFTEST_FAILED"]

SELFTEST_AUDIO = "selftest/windows.wav"
SELFTEST_EXPECTED = "selftest/expected.json"
EXIT_SELFTEST_FAILED = 3
"""The code of a failed drift gate, on the device as on the build host."""
PCM_SCALE = 32768.0
"""16-bit PCM sample ``k`` decodes to ``k / 32768`` (libsndfile's convention)."""


def as_pcm16(windows: np.ndarray) -> np.ndarray:
    """The windows as the self-test file stores them: rounded to 16-bit PCM and decoded back to float32."""
    k = np.clip(np.round(np.asarray(windows, np.float64) * PCM_SCALE), -32768, 32767)
    return (k / PCM_SCALE).astype(np.float32)


def write_selftest(folder: Path, windows: np.ndarray, outputs: dict[str, np.ndarray], *, variant: str,
                   budget: dict[str, float], sampling_rate: int) -> dict[str, Any]:
    """Write the self-test files into a bundle folder being built.

    Args:
        folder: the bundle folder.
        windows: (N, T) windows, already passed through :func:`as_pcm16`.
        outputs: (N, 3) A/D/V of ``float``, ``teacher`` and ``shipped`` on exactly those windows.
        variant: the shipped variant's name.
        budget: the recipe's ``max_ccc_drop`` and ``min_ccc_vs_float``.
        sampling_rate: of the windows, in Hz.

    Returns:
        the manifest's ``selftest`` entry.
    """
    import soundfile as sf

    (folder / SELFTEST_AUDIO).parent.mkdir(parents=True, exist_ok=True)
    sf.write(folder / SELFTEST_AUDIO, windows.reshape(-1), sampling_rate, subtype="PCM_16")
    expected = {"windows": int(len(windows)), "window_samples": int(windows.shape[1]), "variant": variant,
                "budget": budget, "dimensions": list(DIMENSIONS),
                **{name: np.asarray(outputs[name], np.float64).round(7).tolist()
                   for name in ("float", "teacher", "shipped")}}
    (folder / SELFTEST_EXPECTED).write_text(json.dumps(expected, indent=1) + "\n", encoding="utf-8")
    return {"audio": SELFTEST_AUDIO, "expected": SELFTEST_EXPECTED, "windows": expected["windows"]}


def read_selftest(folder: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """The self-test windows (N, T) and the expected outputs of the bundle at ``folder``.

    Raises:
        ValueError: the self-test files are missing or inconsistent (naming the file).
    """
    import soundfile as sf

    audio, expected_path = folder / SELFTEST_AUDIO, folder / SELFTEST_EXPECTED
    if not audio.is_file() or not expected_path.is_file():
        raise ValueError(f"{folder}: this bundle has no self-test ({SELFTEST_AUDIO}, {SELFTEST_EXPECTED}); "
                         "rebuild it with this edgeser")
    try:
        expected = json.loads(expected_path.read_text(encoding="utf-8"))
        n, t = int(expected["windows"]), int(expected["window_samples"])
        samples, _ = sf.read(str(audio), dtype="float32")
        windows = np.asarray(samples, np.float32).reshape(n, t)
        for name in ("float", "teacher", "shipped"):
            if np.asarray(expected[name]).shape != (n, len(DIMENSIONS)):
                raise ValueError(f"'{name}' is not {n} rows of {len(DIMENSIONS)}")
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise ValueError(f"{expected_path}: corrupt self-test ({exc})") from None
    return windows, expected


@dataclass
class SelfTestRow:
    """One dimension of the self-test."""

    dimension: str
    ccc_vs_float: float
    drop: float
    max_abs_vs_float: float
    max_abs_vs_build: float
    reasons: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.reasons


@dataclass
class SelfTestResult:
    """What the self-test measured on this device, and its verdict."""

    rows: list[SelfTestRow]
    windows: int
    budget: dict[str, float]
    variant: str

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    def lines(self) -> list[str]:
        """A small table for a terminal, and the verdict."""
        out = [f"self-test: {self.windows} held-out windows, shipped variant {self.variant}, budget: "
               f"CCC(device, float) >= {self.budget['min_ccc_vs_float']:g}, "
               f"|CCC(device, teacher) - CCC(float, teacher)| <= {self.budget['max_ccc_drop']:g}",
               f"{'dimension':<10} {'CCC(dev,float)':>14} {'drop':>8} {'max|dev-float|':>15} "
               f"{'max|dev-build|':>15}  ok"]
        for r in self.rows:
            out.append(f"{r.dimension:<10} {r.ccc_vs_float:14.5f} {r.drop:8.5f} {r.max_abs_vs_float:15.3g} "
                       f"{r.max_abs_vs_build:15.3g}  {'yes' if r.passed else 'NO: ' + '; '.join(r.reasons)}")
        out.append("self-test PASSED" if self.passed else "self-test FAILED: this device's engine is over the "
                   "drift budget on the build's own windows")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "windows": self.windows, "variant": self.variant, "budget": self.budget,
                "rows": [{**r.__dict__, "passed": r.passed} for r in self.rows]}


def judge(device: np.ndarray, expected: dict[str, Any]) -> SelfTestResult:
    """The self-test's verdict on the device's (N, 3) outputs for the stored windows."""
    fl, teacher, build = (np.asarray(expected[k], np.float64) for k in ("float", "teacher", "shipped"))
    device = np.asarray(device, np.float64)
    budget = {k: float(expected["budget"][k]) for k in ("max_ccc_drop", "min_ccc_vs_float")}
    finite = np.isfinite(device).all(axis=0)
    c_df, c_dt, c_ft = ccc(device, fl), ccc(device, teacher), ccc(fl, teacher)
    rows = []
    for d, name in enumerate(DIMENSIONS):
        row = SelfTestRow(name, float(c_df[d]), float(abs(c_dt[d] - c_ft[d])),
                          float(np.abs(device[:, d] - fl[:, d]).max()), float(np.abs(device[:, d] - build[:, d]).max()))
        if not finite[d]:
            row.reasons.append("non-finite output")
        elif not row.ccc_vs_float >= budget["min_ccc_vs_float"]:
            row.reasons.append(f"CCC(device, float) {row.ccc_vs_float:.4f} < {budget['min_ccc_vs_float']:g}")
        if finite[d] and not row.drop <= budget["max_ccc_drop"]:
            row.reasons.append(f"drop {row.drop:.4f} > {budget['max_ccc_drop']:g}")
        rows.append(row)
    return SelfTestResult(rows, int(len(device)), budget, str(expected.get("variant", "")))


def predict_windows(runner: Runner, windows: np.ndarray) -> np.ndarray:
    """(N, 3) outputs, one window per call: the same calls on the build host and on the device."""
    return np.concatenate([runner.predict(windows[i:i + 1]) for i in range(len(windows))])


def run_selftest(runner: Runner, folder: Path) -> SelfTestResult:
    """Run the bundle's stored windows through ``runner`` (the device's engine) and judge the outputs.

    Raises:
        ValueError: the bundle has no self-test, or a corrupt one.
    """
    windows, expected = read_selftest(Path(folder))
    return judge(predict_windows(runner, windows), expected)
