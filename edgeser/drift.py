"""Drift: how far quantising moved the model, measured with CCC on held-out windows, gated by the recipe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .export import Artefact
from .metrics import DIMENSIONS, ccc, mae, pearson
from .recipe import DriftConfig

__all__ = ["CONDITIONS", "DriftRow", "DriftResult", "check", "predict_all", "evaluate"]

EVAL_BATCH = 16
CONDITIONS = ("ccc_drop", "ccc_vs_float")
"""The gate's two conditions, per variant and dimension (:func:`check` judges each)."""


@dataclass
class DriftRow:
    """One variant, one dimension."""

    variant: str
    dimension: str
    ccc_float_teacher: float
    ccc_quant_teacher: float
    ccc_quant_float: float
    pearson_quant_float: float
    mae_quant_float: float
    passed: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def drop(self) -> float:
        """|CCC(quantised, teacher) - CCC(float, teacher)|."""
        return abs(self.ccc_quant_teacher - self.ccc_float_teacher)


@dataclass
class DriftResult:
    """The drift table of a build and its verdict."""

    rows: list[DriftRow]
    predictions: dict[str, np.ndarray]
    teacher: np.ndarray
    budget: DriftConfig

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    def failures(self, variant: str | None = None) -> list[DriftRow]:
        return [r for r in self.rows if not r.passed and (variant is None or r.variant == variant)]

    def variant_passed(self, variant: str) -> bool:
        return not self.failures(variant)

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": {"max_ccc_drop": self.budget.max_ccc_drop, "min_ccc_vs_float": self.budget.min_ccc_vs_float},
            "windows": int(len(self.teacher)),
            "rows": [{**r.__dict__, "drop": r.drop} for r in self.rows],
            "passed": self.passed,
            "failing_variants": sorted({r.variant for r in self.rows if not r.passed}),
        }


def predict_all(artefact: Artefact, windows: np.ndarray, *, threads: int = 1) -> np.ndarray:
    """Run an artefact through edgeser.runtime (the device code path) on (N, T) windows."""
    from .runtime.engine import open_model

    runner = open_model(artefact.path, threads=threads)
    return np.concatenate([runner.predict(windows[i:i + EVAL_BATCH]) for i in range(0, len(windows), EVAL_BATCH)])


def check(row: DriftRow, name: str, budget: DriftConfig) -> tuple[bool, str]:
    """Whether one of the gate's :data:`CONDITIONS` holds for a row, and the sentence that says so with its numbers.

    The one statement of the gate on the host: the build's verdict and report, ``edgeser drift``, and the JSON and
    JUnit outputs all read it. A NaN figure fails its condition.
    """
    if name == "ccc_drop":
        limit = budget.max_ccc_drop
        ok = row.drop <= limit
        return ok, (f"|CCC({row.variant}, teacher) - CCC(float, teacher)| = |{row.ccc_quant_teacher:.4f} - "
                    f"{row.ccc_float_teacher:.4f}| = {row.drop:.4f} {'<=' if ok else '>'} {limit:g}")
    if name == "ccc_vs_float":
        limit = budget.min_ccc_vs_float
        ok = row.ccc_quant_float >= limit
        return ok, f"CCC({row.variant}, float) = {row.ccc_quant_float:.4f} {'>=' if ok else '<'} {limit:g}"
    raise ValueError(f"unknown drift condition {name!r} (known: {', '.join(CONDITIONS)})")


def _row(variant: str, d: int, fl: np.ndarray, q: np.ndarray, teacher: np.ndarray, budget: DriftConfig) -> DriftRow:
    finite = bool(np.isfinite(q[:, d]).all())
    cf = float(ccc(fl[:, d], teacher[:, d])[0])
    cq = float(ccc(q[:, d], teacher[:, d])[0]) if finite else float("nan")
    cqf = float(ccc(q[:, d], fl[:, d])[0]) if finite else float("nan")
    row = DriftRow(variant, DIMENSIONS[d], cf, cq, cqf,
                   float(pearson(q[:, d], fl[:, d])[0]) if finite else float("nan"),
                   float(mae(q[:, d], fl[:, d])[0]) if finite else float("nan"), True)
    if not finite:
        row.reasons.append("non-finite output")
    else:
        row.reasons.extend(message for ok, message in (check(row, name, budget) for name in CONDITIONS) if not ok)
    row.passed = not row.reasons
    return row


def evaluate(float_art: Artefact, variants: list[Artefact], windows: np.ndarray, teacher: np.ndarray, *,
             budget: DriftConfig, threads: int = 1) -> DriftResult:
    """CCC(float, teacher), CCC(variant, teacher) and CCC(variant, float) per dimension, and the verdict.

    Args:
        float_art: the float export (the reference).
        variants: quantised artefacts to judge.
        windows: held-out (N, T) windows, disjoint from calibration.
        teacher: (N, 3) teacher labels of those windows.
        budget: the recipe's drift budget.
    """
    preds = {"float": predict_all(float_art, windows, threads=threads)}
    rows: list[DriftRow] = []
    for art in variants:
        preds[art.name] = predict_all(art, windows, threads=threads)
        rows.extend(_row(art.name, d, preds["float"], preds[art.name], teacher, budget) for d in range(3))
    return DriftResult(rows, preds, teacher, budget)
