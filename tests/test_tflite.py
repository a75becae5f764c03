"""TFLite export (litert-torch), quantisation (ai-edge-quantizer) and the LiteRT runner, on tiny models.

Conversions take seconds each, so the export tests share one module fixture per target and are marked
slow; the runner, metadata, recipe and front-end tests are fast.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeser import models
from edgeser.errors import ExportCheckError, InputError
from edgeser.metrics import ccc
from edgeser.recipe import load_recipe
from edgeser.runtime import open_model
from edgeser.runtime.engine import MODEL_METADATA_KEY, InputSpec
from edgeser.runtime.frontend import logmel

pytest.importorskip("ai_edge_litert", reason="needs ai-edge-litert: pip install 'edgeser[litert]'")

WINDOW = 16_000  # the tiny corpus has one-second clips
SPEC = InputSpec(window_samples=WINDOW)


def _tflite():
    pytest.importorskip("litert_torch", reason="needs litert-torch: pip install 'edgeser[tflite]'")
    pytest.importorskip("ai_edge_quantizer", reason="needs ai-edge-quantizer: pip install 'edgeser[tflite]'")
    from edgeser.export import tflite

    return tflite


def _windows(corpus: Path) -> np.ndarray:
    from edgeser.audio import list_audio, load

    return np.stack([load(it.path) for it in list_audio(corpus)])


def _small(target: str, **overrides: object):
    return load_recipe(target, **{"data.window_seconds": 1.0, **overrides})


@pytest.fixture(scope="module")
def built(tmp_path_factory, student, corpus):
    """Both TFLite targets exported and quantised from the tiny student: {target: (float, [variants])}."""
    tflite = _tflite()
    model = models.load(student)
    cal = _windows(corpus)[::2]
    out = {}
    for target in ("android", "coral"):
        folder = tmp_path_factory.mktemp(target)
        recipe = _small(target)
        art = tflite.export(model, folder / "model.float.tflite", recipe=recipe, spec=SPEC)
        out[target] = (art, tflite.quantise(art, folder, cal, recipe=recipe, model=model))
    return out


@pytest.fixture(scope="module")
def held_out(corpus) -> np.ndarray:
    return _windows(corpus)[1::2]


# ----------------------------------------------------------------------------- export


@pytest.mark.slow
def test_android_float_matches_torch_and_carries_its_spec(built, student, held_out):
    art, _ = built["android"]
    runner = open_model(art.path)  # recognised by its bytes, spec read from its own metadata
    assert runner.backend == "litert" and runner.spec == art.spec
    assert art.spec.fixed_length and art.spec.frontend == "model" and art.spec.input_name == "waveform"
    assert art.details["parity_max_abs_diff"] < 1e-4
    part_of = {(r["op"], r["part"]) for r in art.details["audit"]}
    assert {("LOG", "frontend"), ("EXP", "softmax"), ("CONV_2D", "body")} <= part_of
    assert art.details["audit"][-1]["part"] == "head" and art.details["audit"][-1]["op"] == "FULLY_CONNECTED"
    with torch.no_grad():
        ref = models.load(student)(torch.from_numpy(held_out)).numpy()
    assert np.abs(runner.predict(held_out) - ref).max() < 1e-4


@pytest.mark.slow
def test_android_variants_are_finite_and_close_to_float(built, held_out):
    art, variants = built["android"]
    assert [v.name for v in variants] == ["float16", "int8-dynamic", "int8"]
    fl = open_model(art.path).predict(held_out)
    for v in variants:
        out = open_model(v.path).predict(held_out)
        assert np.isfinite(out).all(), v.name
        assert min(ccc(out, fl)) > 0.9, (v.name, ccc(out, fl))
        assert v.path.name == f"model.{v.name}.tflite"
        assert json.loads(json.dumps(v.details))["calibration_windows"] == 24
    by_name = {v.name: v for v in variants}
    assert min(ccc(open_model(by_name["float16"].path).predict(held_out), fl)) > 0.999


@pytest.mark.slow
def test_android_int8_runs_body_in_int8_and_frontend_in_float(built):
    _, variants = built["android"]
    int8 = next(v for v in variants if v.name == "int8")
    rows = int8.details["audit"]
    assert not any(r["int8"] for r in rows if r["part"] == "frontend")
    assert all(r["int8"] for r in rows if r["op"] in ("CONV_2D", "DEPTHWISE_CONV_2D") and r["part"] == "body")
    census = {c["op"]: c for c in int8.details["census"]}
    assert census["LOG"]["float"] == 1 and census["LOG"]["int8"] == 0
    assert int8.spec.input_quant is None  # float waveform in


@pytest.mark.slow
def test_coral_is_full_integer_with_int8_io(built, held_out):
    art, (int8,) = built["coral"]
    assert art.spec.frontend == "cpu-logmel" and art.spec.input_name == "logmel"
    assert art.spec.frontend_config == {"n_fft": 64, "hop_length": 32, "n_mels": 26}
    assert all(r["int8"] for r in int8.details["audit"]), [r for r in int8.details["audit"] if not r["int8"]]
    assert {"SOFTMAX", "LOG", "DEQUANTIZE"}.isdisjoint(r["op"] for r in int8.details["audit"])  # QUANTIZE: int8 -> int8
    runner = open_model(int8.path)
    assert runner.spec.input_quant is not None and runner.spec.output_quant is not None
    assert runner.spec == int8.spec
    fl = open_model(art.path).predict(held_out)
    q = runner.predict(held_out)
    assert np.isfinite(q).all() and min(ccc(q, fl)) > 0.9


@pytest.mark.slow
@pytest.mark.parametrize("target", ["android", "coral"])
def test_the_float_file_names_each_ops_part_among_the_declared_ones(built, student, target):
    """The export tags every op with its part among those the student declares; quantise reads the tags back."""
    from edgeser.export import tflite_flatbuffer as fb
    from edgeser.export import tflite_parts

    art, _ = built[target]
    tree = fb.read(art.path)
    declared = models.load(student).quantisable_parts()
    tagged = tflite_parts.tagged_parts(tree)
    assert tagged == tflite_parts.parts(tree, declared) == [r["part"] for r in art.details["audit"]]
    assert set(tagged) == ({"frontend", "softmax", "head", "body"} - ({"frontend"} if target == "coral" else set()))
    assert tflite_parts.parts(tree, ("body",)) == ["body"] * len(tagged)  # a student that declares no other part
    no_softmax = tflite_parts.parts(tree, ("frontend", "head", "body"))
    assert "softmax" not in no_softmax and [p for p in no_softmax if p == "frontend"] == [
        p for p in tagged if p == "frontend"]


def test_divide_once_pooling_is_the_students_function(student):
    """The module converted for a Wav2Small divides the pooled map once; it must compute the student's function."""
    from edgeser.export.tflite import _exportable

    model = models.load(student).eval()
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, WINDOW)).astype(np.float32) * 0.1)
    with torch.no_grad():
        want = model(x)
        torch.testing.assert_close(_exportable(model, "model")(x), want, atol=1e-5, rtol=0)
        mel = model.vgg7.features(x)
        torch.testing.assert_close(_exportable(model, "cpu-logmel")(mel), want, atol=1e-5, rtol=0)
        torch.testing.assert_close(_exportable(model, "cpu-logmel", "as-trained")(mel), want, atol=1e-5, rtol=0)
    assert set(model.state_dict()) == {k.removeprefix("student.") for k in _exportable(model, "model").state_dict()}


@pytest.mark.slow
def test_coral_pools_divide_once_with_one_small_div(built, student, held_out):
    """One int8 DIV, of the pooled (C x C) map: no per-frame DIV whose tiny quotients the int8 kernel saturates."""
    from edgeser.export import tflite_audit
    from edgeser.export import tflite_flatbuffer as fb

    art, (int8,) = built["coral"]
    assert art.details["pooling"] == "divide-once"
    divs = [r for r in int8.details["audit"] if r["op"] == "DIV"]
    assert len(divs) == 1 and divs[0]["part"] == "softmax", divs
    c = models.load(student).cfg.channels
    assert divs[0]["inputs"] == divs[0]["outputs"] * 2 == [f"INT8[1, {c}, {c}]"] * 2, divs  # not per frame
    assert int8.details["reciprocal_softmax"] == 0 and tflite_audit.div_hazards(fb.read(int8.path)) == []
    assert len(int8.details["output_bias_correction"]) == 3  # the calibration's mean int8 - float error, removed
    fl = open_model(art.path).predict(held_out)
    assert min(ccc(open_model(int8.path).predict(held_out), fl)) > 0.98


@pytest.mark.slow
def test_as_trained_softmax_is_rewritten_for_int8(student, monkeypatch, tmp_path, corpus):
    """As trained, the int8 softmax DIV(exp, sum) saturates small weights (LiteRT's kernel); the rewrite avoids it."""
    tflite = _tflite()
    from edgeser.export import tflite_audit, tflite_passes
    from edgeser.export import tflite_flatbuffer as fb

    recipe = _small("coral")
    art = tflite.export(models.load(student), tmp_path / "model.float.tflite", recipe=recipe, spec=SPEC,
                        pooling="as-trained")
    assert art.details["pooling"] == "as-trained"
    (int8,) = tflite.quantise(art, tmp_path, _windows(corpus)[::2], recipe=recipe)
    assert int8.details["reciprocal_softmax"] == 1 and int8.details["dropped_identity_maximum"] == 1
    assert tflite_audit.div_hazards(fb.read(int8.path)) == []
    assert "MAXIMUM" not in {r["op"] for r in int8.details["audit"]}
    monkeypatch.setattr(tflite_passes, "reciprocal_softmax", lambda model, op_parts: op_parts)
    with pytest.raises(ExportCheckError, match="can saturate"):
        tflite.quantise(art, tmp_path, _windows(corpus)[::2], recipe=recipe)


@pytest.mark.slow
def test_coral_int8_runs_on_silence_with_peaked_attention(student, corpus, tmp_path):
    """A max below its calibrated range must not zero every softmax weight (the int8 DIV then divides by 0)."""
    tflite = _tflite()
    model = models.load(student).eval()
    with torch.no_grad():  # sharper attention than the tiny fit: silence pushes the logits below calibration
        model.vgg7.sof.weight.mul_(4.0)
        model.vgg7.sof.bias.mul_(4.0)
    recipe = _small("coral")
    art = tflite.export(model, tmp_path / "model.float.tflite", recipe=recipe, spec=SPEC)
    (int8,) = tflite.quantise(art, tmp_path, _windows(corpus)[::2], recipe=recipe)
    assert np.isfinite(open_model(int8.path)(np.zeros(WINDOW, dtype=np.float32))).all()


@pytest.mark.slow
@pytest.mark.parametrize(("twin", "tail"), [
    ("with_relu_head", ["FULLY_CONNECTED", "FULLY_CONNECTED"]),  # hidden layer, outputs
    ("with_softmax_head", ["FULLY_CONNECTED", "SOFTMAX", "FULLY_CONNECTED"]),  # not taken for the attention
])
def test_a_hidden_head_layer_is_full_integer_on_coral(twin, tail, student, corpus, held_out, tmp_path):
    from edgeser import testing

    tflite = _tflite()
    model = getattr(testing, twin)(models.load(student).eval())
    recipe = _small("coral")
    art = tflite.export(model, tmp_path / "model.float.tflite", recipe=recipe, spec=SPEC)
    (int8,) = tflite.quantise(art, tmp_path, _windows(corpus)[::2], recipe=recipe, model=model)
    audit = int8.details["audit"]
    assert all(r["int8"] for r in audit), [r for r in audit if not r["int8"]]
    assert [(r["part"], r["op"]) for r in audit[-len(tail):]] == [("head", op) for op in tail]
    assert any(r["part"] == "softmax" for r in audit)  # the attention pooling, before the head
    with torch.no_grad():
        ref = model(torch.from_numpy(held_out)).numpy()
    assert np.abs(open_model(art.path).predict(held_out) - ref).max() < 1e-4
    assert min(ccc(open_model(int8.path).predict(held_out), ref)) > 0.9


@pytest.mark.slow
@pytest.mark.parametrize("target", ["coral", "android"])
def test_speech_statistics_convert_and_are_integer_in_the_head(target, stats_student, corpus, held_out, tmp_path):
    """The statistics (a sigmoid speech weight, moments, a LOG-free dB sum) follow the pooling, in the head:
    int8 on both targets, every op of them on coral."""
    tflite = _tflite()
    model = models.load(stats_student).eval()
    recipe = _small(target)
    art = tflite.export(model, tmp_path / "model.float.tflite", recipe=recipe, spec=SPEC)
    int8 = tflite.quantise(art, tmp_path, _windows(corpus)[::2], recipe=recipe, model=model)[-1]
    audit = int8.details["audit"]
    assert [r["part"] for r in audit if r["op"] == "LOGISTIC"] == ["head"]
    assert [r["part"] for r in audit if r["op"] == "EXP"] == ["softmax", "head"]  # the attention's; the dB sum's
    assert not any(r["op"] in ("LOG", "SQRT") and r["part"] != "frontend" for r in audit)
    if target == "coral":
        assert all(r["int8"] for r in audit), [r for r in audit if not r["int8"]]
    with torch.no_grad():
        ref = model(torch.from_numpy(held_out)).numpy()
    assert np.abs(open_model(art.path).predict(held_out) - ref).max() < 1e-4
    assert min(ccc(open_model(int8.path).predict(held_out), ref)) > 0.9


@pytest.mark.slow
def test_coral_cpu_frontend_plus_body_matches_the_whole_torch_model(built, student, held_out):
    art, _ = built["coral"]
    with torch.no_grad():
        ref = models.load(student)(torch.from_numpy(held_out)).numpy()
    assert np.abs(open_model(art.path).predict(held_out) - ref).max() < 1e-4


@pytest.mark.slow
def test_runner_pads_and_crops_to_the_fixed_window(built, held_out):
    art, _ = built["android"]
    runner = open_model(art.path)
    x = held_out[0]
    assert np.allclose(runner(x[: WINDOW // 2]), runner(np.pad(x[: WINDOW // 2], (0, WINDOW // 2))), atol=1e-6)
    assert np.allclose(runner(np.concatenate([x, x])), runner(x), atol=1e-6)
    runner.reset()
    with pytest.raises(ValueError, match="one"):
        runner(held_out)


@pytest.mark.slow
def test_a_silently_wrong_conversion_is_caught(built, tmp_path, monkeypatch):
    """A converter that writes a plausible but different model (like a dropped transpose) fails the export."""
    tflite = _tflite()
    art, _ = built["coral"]
    torch.manual_seed(7)
    other = models.create_model("wav2small").eval()  # same layout, other weights
    monkeypatch.setattr(tflite, "_convert", lambda module, sample, path: shutil.copy(art.path, path) and "copy")
    with pytest.raises(ExportCheckError, match="differs from torch"):
        tflite.export(other, tmp_path / "m.tflite", recipe=_small("coral"), spec=SPEC)


@pytest.mark.slow
def test_variant_checks_reject_nan_and_float_ops(built):
    _tflite()
    from edgeser.export import tflite_quantise
    _, (int8,) = built["coral"]
    recipe = _small("coral")
    bad = np.zeros((4, 3), dtype=np.float32)
    bad[1, 2] = np.nan
    with pytest.raises(ExportCheckError, match="NaN or Inf on 1 of 4"):
        tflite_quantise._check_variant("float16", int8.path, bad, recipe, int8.details["audit"])
    audit = [dict(r) for r in int8.details["audit"]]
    audit[3]["int8"] = False
    with pytest.raises(ExportCheckError, match="require_int8: 1 op"):
        tflite_quantise._check_variant("int8", int8.path, np.zeros((4, 3)), recipe, audit)


@pytest.mark.slow
def test_edgetpu_asked_but_absent_runs_on_cpu(built, caplog):
    from edgeser.runtime import litert

    _, (int8,) = built["coral"]
    with caplog.at_level(logging.WARNING, logger="edgeser.runtime"):
        runner = litert.load(int8.path, edgetpu=True)
    assert runner.delegate == "cpu" and "running on the CPU" in caplog.text
    assert runner(np.zeros(WINDOW, dtype=np.float32)).shape == (3,)


# ----------------------------------------------------------------------------- fast


def test_metadata_reader_reads_what_the_schema_writes(tmp_path):
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    from edgeser.export import tflite_flatbuffer
    from edgeser.runtime.litert import read_metadata

    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT()]
    model.subgraphs = []
    tflite_flatbuffer.set_metadata(model, {MODEL_METADATA_KEY: SPEC.to_json().encode(), "other": b"\x00\x01"})
    data = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    meta = read_metadata(data)
    assert InputSpec.from_dict(json.loads(meta[MODEL_METADATA_KEY])) == SPEC
    assert meta["other"] == b"\x00\x01"
    with pytest.raises(ValueError, match="TFL3"):
        read_metadata(b"\x00" * 16)


def test_numpy_frontend_matches_torch_on_padded_speech():
    """The coral runner's numpy log-mel feeds the same body as the model's own torch front-end."""
    from edgeser.testing import synth_clip

    rng = np.random.default_rng(3)
    x = np.stack([np.pad(synth_clip(rng, seconds=0.6), (0, 6400)) for _ in range(3)])  # trailing zeros
    m = models.create_model("wav2small").eval()
    with torch.no_grad():
        ref_mel = m.vgg7.features(torch.from_numpy(x)).numpy()
        got = m.forward_features(torch.from_numpy(logmel(x))).numpy()
        ref = m(torch.from_numpy(x)).numpy()
    assert np.abs(logmel(x) - ref_mel).max() < 0.05  # dB
    assert np.abs(got - ref).max() < 1e-5


def test_tflite_recipes_load_and_validate(tmp_path):
    android, coral = load_recipe("android"), load_recipe("coral")
    assert android.export.format == coral.export.format == "tflite"
    assert android.runtime.backend == coral.runtime.backend == "litert"
    assert coral.export.frontend == "cpu-logmel" and coral.quantise.require_int8 and coral.quantise.float_ops == []
    assert android.bundle.ship in android.quantise.variants
    with pytest.raises(InputError, match="needs export.format"):
        load_recipe("rpi", **{"export.frontend": "cpu-logmel"})


def test_unknown_scheme_and_variant_are_input_errors(tmp_path):
    tflite = _tflite()
    from edgeser.export import Artefact, tflite_quantise

    art = Artefact("float", tmp_path / "x.tflite", SPEC)
    with pytest.raises(InputError, match="not supported for TFLite"):
        tflite.quantise(art, tmp_path, np.zeros((1, WINDOW), np.float32), recipe=load_recipe("rpi"))
    with pytest.raises(InputError, match="unknown TFLite variant"):
        tflite_quantise._recipe_for("int4", [])


def test_missing_engine_names_the_extra(tmp_path, monkeypatch):
    import builtins

    from edgeser.runtime import litert

    real_import = builtins.__import__

    def no_tflite_runtime(name, *args, **kwargs):
        if name.startswith("tflite_runtime"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tflite_runtime)
    with pytest.raises(ImportError, match="tflite-runtime"):
        litert.load(tmp_path / "none.tflite", engine="tflite_runtime")
    with pytest.raises(ValueError, match="unknown TFLite engine"):
        litert.load(tmp_path / "none.tflite", engine="tvm")


@pytest.mark.slow
def test_bundled_runtime_on_tflite_runtime(built, held_out, tmp_path):
    """The runtime folder, copied as a bundle holds it, on tflite-runtime 2.14 (numpy 1.x) in its own venv.

    Needs a Python with ``numpy<2`` and ``tflite-runtime==2.14.0`` named by $EDGESER_TFLITE_RUNTIME_PYTHON
    (CI makes one: see docs/tflite-measurements.md); skipped otherwise.
    """
    import os
    import subprocess
    import sys

    python = os.environ.get("EDGESER_TFLITE_RUNTIME_PYTHON")
    if not python:
        pytest.skip("set EDGESER_TFLITE_RUNTIME_PYTHON to a python with tflite-runtime 2.14 and numpy<2")
    from edgeser.resources import package_dir

    shutil.copytree(package_dir() / "runtime", tmp_path / "edgeser_runtime")
    np.save(tmp_path / "x.npy", held_out[:6])
    (android_float, android), (_, (coral,)) = built["android"], built["coral"]
    paths = [android_float.path, *(v.path for v in android), coral.path]
    script = ("import sys, json, numpy as np\nfrom edgeser_runtime import open_model\nout = {}\n"
              "for p in sys.argv[1:]:\n"
              "    try:\n        out[p] = open_model(p).predict(np.load('x.npy')).tolist()\n"
              "    except ValueError as exc:\n        out[p] = str(exc)\nprint(json.dumps(out))\n")
    env = {**os.environ, "EDGESER_TFLITE_ENGINE": "tflite_runtime"}
    proc = subprocess.run([python, "-c", script, *map(str, paths)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    expect = {str(p): open_model(p).predict(held_out[:6]) for p in paths}
    by_name = {p.name: str(p) for p in paths[:-1]}  # android files; the coral one is checked below
    for name in ("model.float.tflite", "model.float16.tflite"):
        assert np.allclose(got[by_name[name]], expect[by_name[name]], atol=1e-4), name
    assert np.abs(np.array(got[by_name["model.int8.tflite"]]) - expect[by_name["model.int8.tflite"]]).max() < 0.05
    assert "computes 'int8-dynamic' models wrongly" in got[by_name["model.int8-dynamic.tflite"]]
    assert "cannot run this model" in got[str(coral.path)] and "DIV" in got[str(coral.path)]
    assert sys.executable != python
