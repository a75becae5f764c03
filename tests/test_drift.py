"""The drift gate: each of its two conditions fails a variant on its own, and exactly at the budget passes.

The gate fails a variant and dimension when |CCC(q, T) - CCC(f, T)| > ``max_ccc_drop`` OR
CCC(q, f) < ``min_ccc_vs_float`` (q: quantised, f: float, T: teacher). The predictions here are built with
numpy so that exactly one condition is violated and the other holds, by a margin.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeser.drift import CONDITIONS, EVAL_BATCH, DriftResult, DriftRow, _row, check, evaluate
from edgeser.export import Artefact
from edgeser.metrics import DIMENSIONS, ccc
from edgeser.recipe import DriftConfig
from edgeser.runtime.engine import MODEL_METADATA_KEY, InputSpec

N = 400
BUDGET = DriftConfig()  # the recipes' default: max_ccc_drop 0.01, min_ccc_vs_float 0.98
DROP_REASON = "|CCC(int8, teacher) - CCC(float, teacher)|"
VS_FLOAT_REASON = "CCC(int8, float)"


def _teacher(seed: int = 0) -> np.ndarray:
    """(N, 3) teacher labels, each column zero-mean and unit-variance."""
    t = np.random.default_rng(seed).standard_normal((N, 3))
    return (t - t.mean(0)) / t.std(0)


def _orthogonal_noise(t: np.ndarray, ratio: float, seed: int = 1) -> np.ndarray:
    """Zero-mean noise uncorrelated with every column of ``t``, with variance ``ratio`` * var(t)."""
    e = np.random.default_rng(seed).standard_normal(t.shape)
    e -= e.mean(0)
    e -= t * ((e * t).mean(0) / (t * t).mean(0))  # remove the projection on t (t is zero-mean)
    return e / e.std(0) * np.sqrt(ratio) * t.std(0)


def _bias_for(target_ccc: float) -> float:
    """The constant offset b with CCC(t + b, t) = target_ccc for a unit-variance t: 2 / (2 + b**2)."""
    return float(np.sqrt(2 / target_ccc - 2))


def _rows(fl: np.ndarray, q: np.ndarray, t: np.ndarray, budget: DriftConfig = BUDGET) -> list[DriftRow]:
    return [_row("int8", d, fl, q, t, budget) for d in range(3)]


def test_the_constructions_hit_their_numbers():
    t = _teacher()
    assert ccc(t + _bias_for(0.985), t) == pytest.approx([0.985] * 3, abs=1e-12)
    e = _orthogonal_noise(t, 0.02)
    assert ccc(t + e, t) == pytest.approx(ccc(t - e, t), abs=1e-12)
    assert ccc(t + e, t - e) == pytest.approx([0.98 / 1.02] * 3, abs=1e-12)


def test_a_drop_over_budget_alone_fails():
    """CCC(q, f) = 0.985 is within the budget (>= 0.98); the drop 0.015 is not (> 0.01)."""
    t = _teacher()
    q = t + _bias_for(0.985)
    for row in _rows(t, q, t):
        assert row.ccc_float_teacher == pytest.approx(1.0)
        assert row.ccc_quant_teacher == pytest.approx(0.985)
        assert row.ccc_quant_float == pytest.approx(0.985)
        assert row.drop == pytest.approx(0.015)
        assert not row.passed
        assert len(row.reasons) == 1 and row.reasons[0].startswith(DROP_REASON)
        assert row.reasons[0] == f"{DROP_REASON} = |0.9850 - 1.0000| = 0.0150 > 0.01"


def test_a_quantised_model_better_than_the_float_one_by_more_than_the_budget_also_fails():
    """The drop is an absolute difference: the gate guards fidelity, not only loss."""
    t = _teacher()
    fl = t + _bias_for(0.985)
    for row in _rows(fl, t, t):
        assert row.ccc_quant_teacher == pytest.approx(1.0) and row.ccc_float_teacher == pytest.approx(0.985)
        assert row.drop == pytest.approx(0.015)
        assert not row.passed and [r[:len(DROP_REASON)] for r in row.reasons] == [DROP_REASON]


def test_a_low_ccc_against_float_alone_fails():
    """q and f are equally good against the teacher (drop 0) but disagree with each other: CCC(q, f) 0.961."""
    t = _teacher()
    e = _orthogonal_noise(t, 0.02)
    for row in _rows(t + e, t - e, t):
        assert row.drop < 1e-12
        assert row.ccc_quant_float == pytest.approx(0.98 / 1.02)
        assert not row.passed
        assert row.reasons == [f"{VS_FLOAT_REASON} = 0.9608 < 0.98"]


def test_both_conditions_are_reported_and_within_both_passes():
    t = _teacher()
    fl = t + _orthogonal_noise(t, 0.02)
    both = _rows(fl, t - _orthogonal_noise(t, 0.5) + 1.0, t)
    assert all(len(r.reasons) == 2 and not r.passed for r in both)
    close = _rows(fl, fl + _orthogonal_noise(t, 0.001, seed=2), t)
    assert all(r.passed and r.reasons == [] for r in close)


def _edge_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float = teacher, quantised a little off (a drop near 0.006, CCC vs float near 0.994)."""
    t = _teacher()
    return t, t + 0.1 + _orthogonal_noise(t, 0.002), t


def test_exactly_at_the_budget_passes_and_one_ulp_past_it_fails():
    fl, q, t = _edge_case()
    for d in range(3):
        row = _row("int8", d, fl, q, t, BUDGET)
        drop, vs_float = row.drop, row.ccc_quant_float
        assert 0 < drop < 1 and 0 < vs_float < 1
        at = DriftConfig(max_ccc_drop=drop, min_ccc_vs_float=vs_float)
        assert _row("int8", d, fl, q, t, at).passed
        tighter_drop = DriftConfig(max_ccc_drop=float(np.nextafter(drop, 0)), min_ccc_vs_float=vs_float)
        row = _row("int8", d, fl, q, t, tighter_drop)
        assert not row.passed and len(row.reasons) == 1 and row.reasons[0].startswith(DROP_REASON)
        tighter_floor = DriftConfig(max_ccc_drop=drop, min_ccc_vs_float=float(np.nextafter(vs_float, 2)))
        row = _row("int8", d, fl, q, t, tighter_floor)
        assert not row.passed and len(row.reasons) == 1 and row.reasons[0].startswith(VS_FLOAT_REASON)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_output_fails_its_dimension_only(bad):
    t = _teacher()
    q = t.copy()
    q[7, 1] = bad
    rows = _rows(t, q, t)
    assert [r.dimension for r in rows] == list(DIMENSIONS)
    assert rows[0].passed and rows[2].passed
    row = rows[1]
    assert not row.passed and row.reasons == ["non-finite output"]
    assert row.ccc_float_teacher == pytest.approx(1.0)
    assert all(np.isnan(v) for v in (row.ccc_quant_teacher, row.ccc_quant_float, row.pearson_quant_float,
                                     row.mae_quant_float))


def test_each_dimension_is_judged_on_its_own_column():
    t = _teacher()
    q = t.copy()
    q[:, 2] += _bias_for(0.985)  # valence drifts, the others are exact
    rows = _rows(t, q, t)
    assert [r.passed for r in rows] == [True, True, False]
    assert rows[0].ccc_quant_float == pytest.approx(1.0) and rows[0].mae_quant_float == pytest.approx(0.0)
    assert rows[2].mae_quant_float == pytest.approx(_bias_for(0.985))
    assert rows[2].pearson_quant_float == pytest.approx(1.0)  # an offset moves CCC, not Pearson


def test_result_verdicts_and_table():
    t = _teacher()
    good = [_row("good", d, t, t, t, BUDGET) for d in range(3)]
    bad = [_row("bad", d, t, t + _bias_for(0.985) * (d == 0), t, BUDGET) for d in range(3)]
    result = DriftResult(good + bad, {"float": t}, t, BUDGET)
    assert not result.passed
    assert result.variant_passed("good") and not result.variant_passed("bad")
    assert [(r.variant, r.dimension) for r in result.failures()] == [("bad", "arousal")]
    assert result.failures("good") == [] and result.failures("bad") == [bad[0]]
    table = result.to_dict()
    assert table["budget"] == {"max_ccc_drop": 0.01, "min_ccc_vs_float": 0.98}
    assert table["windows"] == N and table["passed"] is False and table["failing_variants"] == ["bad"]
    assert len(table["rows"]) == 6 and table["rows"][3]["drop"] == pytest.approx(0.015)
    assert table["rows"][3]["variant"] == "bad" and table["rows"][3]["passed"] is False
    assert DriftResult(good, {"float": t}, t, BUDGET).passed
    json.dumps(table)  # goes into the manifest as is


def _slice_model(path: Path, start: int, window: int) -> Path:
    """An ONNX model whose A/D/V output is columns ``start .. start + 3`` of its input window."""
    import onnx
    from onnx import TensorProto, helper

    consts = [helper.make_tensor(name, TensorProto.INT64, [1], [value])
              for name, value in (("starts", start), ("ends", start + 3), ("axes", 1))]
    graph = helper.make_graph(
        [helper.make_node("Slice", ["waveform", "starts", "ends", "axes"], ["adv"])], "slice",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["N", window])],
        [helper.make_tensor_value_info("adv", TensorProto.FLOAT, ["N", 3])], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    helper.set_model_props(model, {MODEL_METADATA_KEY: InputSpec(window_samples=window).to_json()})
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def test_evaluate_runs_each_artefact_through_the_runtime_and_gates_each_variant(tmp_path):
    """Windows carry the predictions: columns 0-2 for the float model, 3-5 for int8, 6-8 for drifting."""
    t = _teacher()[:41]  # not a multiple of the evaluation batch
    assert len(t) % EVAL_BATCH
    window = 12
    windows = np.zeros((len(t), window), np.float32)
    windows[:, 0:3] = t
    windows[:, 3:6] = t + 0.001 * _orthogonal_noise(t, 1.0)
    windows[:, 6:9] = t + _bias_for(0.97)
    spec = InputSpec(window_samples=window)
    arts = [Artefact(name, _slice_model(tmp_path / f"{name}.onnx", start, window), spec)
            for name, start in (("float", 0), ("int8", 3), ("drifting", 6))]
    result = evaluate(arts[0], arts[1:], windows, t, budget=BUDGET)
    assert list(result.predictions) == ["float", "int8", "drifting"]
    for name, start in (("float", 0), ("int8", 3), ("drifting", 6)):
        assert np.array_equal(result.predictions[name], windows[:, start:start + 3])
    assert [(r.variant, r.dimension) for r in result.rows] == [(v, d) for v in ("int8", "drifting")
                                                               for d in DIMENSIONS]
    assert result.variant_passed("int8") and not result.variant_passed("drifting") and not result.passed
    assert result.teacher is t and result.budget is BUDGET
    drifting = result.failures("drifting")
    assert len(drifting) == 3 and all(len(r.reasons) == 2 for r in drifting)
    assert all(r.ccc_float_teacher == pytest.approx(1.0, abs=1e-6) for r in result.rows)
    loose = evaluate(arts[0], arts[1:], windows, t, budget=DriftConfig(max_ccc_drop=0.05, min_ccc_vs_float=0.9))
    assert loose.passed


def test_the_json_and_junit_outputs_state_the_gate_in_the_reports_words():
    """One statement of the gate: a failing condition's JSON/JUnit message is the report's reason, word for word."""
    from edgeser.drift_report import drift_json

    t = _teacher()
    fl = t + _orthogonal_noise(t, 0.02)
    rows = _rows(fl, t - _orthogonal_noise(t, 0.5) + 1.0, t)
    report = drift_json(DriftResult(rows, {}, t, BUDGET), target="rpi", shipped="int8")
    for row, out in zip(rows, report["rows"], strict=True):
        assert [c["message"] for c in out["conditions"].values() if not c["passed"]] == row.reasons
    assert set(report["rows"][0]["conditions"]) == set(CONDITIONS)


def test_a_nan_figure_fails_its_condition():
    nan = DriftRow("int8", "arousal", 0.9, float("nan"), float("nan"), float("nan"), float("nan"), True)
    assert not check(nan, "ccc_drop", BUDGET)[0] and not check(nan, "ccc_vs_float", BUDGET)[0]
    with pytest.raises(ValueError, match=r"unknown drift condition 'latency' \(known: ccc_drop, ccc_vs_float\)"):
        check(nan, "latency", BUDGET)


def test_a_condition_that_holds_says_so_with_its_numbers():
    t = _teacher()
    row = _rows(t, t + _bias_for(0.985), t)[0]  # drop 0.015 fails; CCC(q, f) 0.985 holds
    assert check(row, "ccc_vs_float", BUDGET) == (True, "CCC(int8, float) = 0.9850 >= 0.98")
    e = _orthogonal_noise(t, 0.02)
    row = _rows(t + e, t - e, t)[0]  # drop 0 holds; CCC(q, f) 0.961 fails
    assert check(row, "ccc_drop", BUDGET) == (
        True, f"{DROP_REASON} = |{row.ccc_quant_teacher:.4f} - {row.ccc_float_teacher:.4f}| = 0.0000 <= 0.01")
