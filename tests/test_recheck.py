"""``edgeser drift BUNDLE --audio``: a built bundle's shipped model re-checked against its float reference."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeser.bundle import verify
from edgeser.cli import app
from edgeser.errors import InputError, VerifyError
from edgeser.recheck import recheck, reference_entry
from edgeser.runtime.integrity import sha256_file

cli = CliRunner()


@pytest.fixture(scope="module")
def built(tmp_path_factory, student, teacher_onnx, corpus, small_recipe) -> tuple[Path, dict]:
    """A tiny rpi bundle and the build's own --json report."""
    root = tmp_path_factory.mktemp("recheck")
    out = root / "bundle"
    result = cli.invoke(app, ["build", "--recipe", str(small_recipe), "--student", str(student), "--teacher",
                              str(teacher_onnx), "--audio", str(corpus), "--out", str(out), "--quiet",
                              "--json", str(root / "build.json")])
    assert result.exit_code == 0, result.output
    return out, json.loads((root / "build.json").read_text())


def _drift(*args: str) -> tuple[int, str]:
    result = cli.invoke(app, ["drift", *args])
    return result.exit_code, result.output


def _rehash(folder: Path, manifest: dict) -> None:
    """Write a manifest whose hashes match the files again, as someone editing a bundle by hand would."""
    for name in manifest["files"]:
        manifest["files"][name] = sha256_file(folder / name)
    manifest["model"]["sha256"] = manifest["files"][manifest["model"]["file"]]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    verify(folder)


@pytest.mark.slow
def test_every_bundle_keeps_its_float_model_listed(built):
    bundle, _ = built
    manifest = verify(bundle)
    ref = manifest["reference"]
    assert ref["file"] == "reference/model.float.onnx" and ref["variant"] == "float"
    assert manifest["files"][ref["file"]] == ref["sha256"] == sha256_file(bundle / ref["file"])
    assert reference_entry(bundle, manifest) == bundle / ref["file"]


@pytest.mark.slow
def test_drift_passes_on_the_calibration_corpus(built, corpus, teacher_onnx, tmp_path):
    bundle, build_json = built
    code, out = _drift(str(bundle), "--audio", str(corpus), "--teacher", str(teacher_onnx), "--quiet",
                       "--json", str(tmp_path / "drift.json"), "--junit", str(tmp_path / "drift.xml"))
    assert code == 0, out
    assert "shipped model vs its float reference" in out and "passed: int8" in out
    for dim in ("arousal", "dominance", "valence"):
        assert any(dim in line and "yes" in line for line in out.splitlines())
    report = json.loads((tmp_path / "drift.json").read_text())
    assert report["verdict"] == "passed" and report["shipped_variant"] == "int8"
    assert report["windows"] == 48 and report["audio"]["files"] == 48
    assert set(build_json) <= set(report)  # the build's --json shape, plus what was checked
    assert [set(r) for r in report["rows"]] == [set(build_json["rows"][0])] * 3
    assert report["budget"] == build_json["budget"]
    assert (tmp_path / "drift.xml").read_text().count("<testcase") == 6


@pytest.mark.slow
def test_the_same_float_and_shipped_model_agree_with_the_library(built, corpus, teacher_onnx):
    bundle, _ = built
    result = recheck(bundle, corpus, teacher=teacher_onnx)
    assert result.passed and result.same_teacher
    assert [r.variant for r in result.drift.rows] == ["int8"] * 3
    assert all(r.ccc_quant_float > 0.98 for r in result.drift.rows)


@pytest.mark.slow
def test_on_the_builds_held_out_audio_it_repeats_the_builds_numbers(built, corpus, teacher_onnx, tmp_path):
    bundle, _ = built
    manifest = verify(bundle)
    held = set(manifest["data"]["evaluation_names"])
    lines = [line.split(",") for line in corpus.read_text().splitlines()[1:]]
    held_csv = tmp_path / "held-out.csv"
    held_csv.write_text("file,speaker\n" + "".join(f"{corpus.parent / f},{s}\n" for f, s in lines if s in held))
    result = recheck(bundle, held_csv, teacher=teacher_onnx)
    assert len(result.drift.teacher) == manifest["drift"]["windows"]
    built_rows = [r for r in manifest["drift"]["rows"] if r["variant"] == "int8"]
    for mine, theirs in zip(result.drift.rows, built_rows, strict=True):
        for key in ("ccc_float_teacher", "ccc_quant_teacher", "ccc_quant_float"):
            assert getattr(mine, key) == pytest.approx(theirs[key], rel=1e-9, abs=1e-12), (mine.dimension, key)


@pytest.mark.slow
def test_a_litert_bundle_is_rechecked_through_its_tflite_reference(tmp_path, student, teacher_onnx, corpus):
    pytest.importorskip("litert_torch", reason="needs edgeser[tflite]")
    pytest.importorskip("ai_edge_quantizer", reason="needs edgeser[tflite]")
    from edgeser.resources import recipes_dir

    text = (recipes_dir() / "android.toml").read_text(encoding="utf-8")
    for old, new in (("window_seconds = 2.0", "window_seconds = 1.0"), ("calibration_windows = 64",
                     "calibration_windows = 16"), ("min_evaluation_windows = 32", "min_evaluation_windows = 16")):
        text = text.replace(old, new)
    # the tiny student is a toy: this checks the path through the tflite reference, not the real budget
    text = re.sub(r"max_ccc_drop = [0-9.]+", "max_ccc_drop = 0.05", text)
    text = re.sub(r"min_ccc_vs_float = [0-9.]+", "min_ccc_vs_float = 0.9", text)
    (tmp_path / "android-small.toml").write_text(text, encoding="utf-8")
    out = tmp_path / "android"
    result = cli.invoke(app, ["build", "--recipe", str(tmp_path / "android-small.toml"), "--student", str(student),
                              "--teacher", str(teacher_onnx), "--audio", str(corpus), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert verify(out)["reference"]["file"] == "reference/model.float.tflite"
    code, text = _drift(str(out), "--audio", str(corpus), "--teacher", str(teacher_onnx), "--quiet")
    assert code == 0, text
    assert "passed: int8" in text and "drop <= 0.05" in text


@pytest.mark.slow
def test_a_worse_shipped_model_fails_with_exit_3(built, corpus, teacher_onnx, tmp_path):
    bundle, _ = built
    worse = shutil.copytree(bundle, tmp_path / "worse")
    (worse / "model.onnx").write_bytes(teacher_onnx.read_bytes())  # another model, re-hashed: verify passes
    _rehash(worse, json.loads((worse / "manifest.json").read_text()))
    code, out = _drift(str(worse), "--audio", str(corpus), "--teacher", str(teacher_onnx), "--quiet",
                       "--json", str(tmp_path / "drift.json"))
    assert code == 3, out
    assert "over the bundle's drift budget on this audio" in out and "Traceback" not in out
    report = json.loads((tmp_path / "drift.json").read_text())
    assert report["verdict"] == "failed" and not all(r["passed"] for r in report["rows"])


@pytest.mark.slow
def test_a_tampered_bundle_exits_6(built, corpus, tmp_path):
    bundle, _ = built
    tampered = shutil.copytree(bundle, tmp_path / "tampered")
    ref = tampered / "reference" / "model.float.onnx"
    ref.write_bytes(ref.read_bytes() + b"\0")
    code, out = _drift(str(tampered), "--audio", str(corpus), "--quiet")
    assert code == 6, out
    assert "changed: reference/model.float.onnx" in out and len(out.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_bundle_without_a_reference_model_is_refused(built, corpus, tmp_path):
    bundle, _ = built
    old = shutil.copytree(bundle, tmp_path / "old")
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["reference"], manifest["files"]["reference/model.float.onnx"]
    shutil.rmtree(old / "reference")
    _rehash(old, manifest)
    code, out = _drift(str(old), "--audio", str(corpus), "--quiet")
    assert code == 2, out
    assert "keeps no float reference model" in out


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["missing", "not audio", "too short"])
def test_bad_audio_exits_2_in_one_line(built, tmp_path, wav, kind):
    import numpy as np

    bundle, _ = built
    audio = tmp_path / "audio"
    audio.mkdir()
    if kind == "missing":
        audio = tmp_path / "nothing-here"
    elif kind == "not audio":
        (audio / "x.wav").write_bytes(b"RIFF but not really a wave file")
    else:  # one window: CCC is not defined
        shutil.move(wav(np.random.default_rng(0).normal(0, 0.1, 8_000).astype("float32")), audio / "x.wav")
    code, out = _drift(str(bundle), "--audio", str(audio), "--quiet")
    assert code == 2, out
    assert len(out.strip().splitlines()) == 1 and out.startswith("error:") and "Traceback" not in out


def test_an_archive_is_refused_naming_it(tmp_path):
    archive = tmp_path / "bundle.tar.gz"
    archive.write_bytes(b"\x1f\x8b")
    with pytest.raises(InputError, match="unpack the bundle archive"):
        recheck(archive, tmp_path)
    code, out = _drift(str(archive), "--audio", str(tmp_path))
    assert code == 2 and "bundle.tar.gz" in out


def test_reference_entry_must_match_the_files_table(tmp_path):
    files = {"reference/model.float.onnx": "a" * 64, "model.onnx": "b" * 64}
    assert reference_entry(tmp_path, {"files": files, "reference": {"file": "reference/model.float.onnx",
                                                                    "sha256": "a" * 64}}) == (
        tmp_path / "reference/model.float.onnx")
    with pytest.raises(InputError, match="keeps no float reference model"):
        reference_entry(tmp_path, {"files": files})
    for entry in ({"file": "reference/model.float.onnx", "sha256": "b" * 64}, {"file": "../model.onnx"},
                  {"file": "model.onnx", "sha256": "a" * 64}, "reference/model.float.onnx"):
        with pytest.raises(VerifyError, match="reference entry"):
            reference_entry(tmp_path, {"files": files, "reference": entry})
