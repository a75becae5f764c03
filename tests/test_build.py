"""End-to-end: build rpi bundles from tiny models and audio, run the bundle's runner, check the drift gate."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from edgeser.bundle import verify
from edgeser.cli import app

pytestmark = pytest.mark.slow
cli = CliRunner()


def _build(tmp, student, teacher, corpus, recipe, *extra):
    out = tmp / "bundle"
    args = ["build", "--recipe", str(recipe), "--student", str(student), "--teacher", str(teacher),
            "--audio", str(corpus), "--out", str(out), "--quiet", *extra]
    return out, cli.invoke(app, args)


@pytest.fixture(scope="module")
def built(tmp_path_factory, student, teacher_onnx, corpus, small_recipe):
    tmp = tmp_path_factory.mktemp("build")
    out, result = _build(tmp, student, teacher_onnx, corpus, small_recipe)
    assert result.exit_code == 0, result.output
    return out, result


def test_sound_quantisation_passes_and_bundle_is_complete(built):
    out, result = built
    assert "int8" in result.output and "bundle:" in result.output
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    for expected in ("model.onnx", "manifest.json", "report.md", "requirements.txt", "install.sh",
                     "edgeser-listener.service", "README.md", "runner/__main__.py",
                     "runner/edgeser_runtime/engine.py", "runner/edgeser_runtime/onnx.py",
                     "plots/scatter_int8_arousal.png"):
        assert expected in names
    manifest = verify(out)
    assert manifest["drift"]["passed"] is True
    assert manifest["model"]["variant"] == "int8" and manifest["runtime"]["backend"] == "onnx"
    assert manifest["input"]["window_samples"] == 16000
    rows = manifest["drift"]["rows"]
    assert len(rows) == 3 and all(r["ccc_quant_float"] >= 0.98 for r in rows)
    assert verify(out.parent / "bundle.tar.gz")["files"] == manifest["files"]
    report = (out / "report.md").read_text()
    assert "Drift gate for the shipped variant `int8`: PASSED" in report
    assert "| int8 | arousal |" in report and "Op census" in report
    assert manifest["sizes"]["int8"] < 60 * 1024


def test_bundle_runner_in_a_subprocess(built, corpus, tmp_path):
    out, _ = built
    clips = sorted(corpus.parent.glob("*.flac"))[:2]
    long = tmp_path / "long.wav"
    sf.write(long, np.concatenate([sf.read(c)[0] for c in clips * 4]), 16000)
    proc = subprocess.run([sys.executable, "-m", "runner", "--json", str(clips[0]), str(long)], cwd=out,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [r["windows"] for r in lines] == [1, 8]  # 1-s windows (tiny recipe)
    for r in lines:
        assert all(np.isfinite(r[k]) for k in ("arousal", "dominance", "valence"))
    # the device path and the host path agree on the same file
    host = cli.invoke(app, ["predict", "--model", str(out), str(clips[0]), "--csv", str(tmp_path / "p.csv")])
    assert host.exit_code == 0, host.output
    mean = [r for r in (tmp_path / "p.csv").read_text().splitlines() if ",mean," in r][0].split(",")
    assert float(mean[3]) == pytest.approx(lines[0]["arousal"], abs=1e-5)
    bad = subprocess.run([sys.executable, "-m", "runner", str(tmp_path / "missing.wav")], cwd=out,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "missing.wav" in bad.stderr


def test_broken_quantisation_exits_3_with_report_and_no_bundle(tmp_path, student, teacher_onnx, corpus,
                                                               small_recipe):
    out, result = _build(tmp_path, student, teacher_onnx, corpus, small_recipe, "--float-ops", "")
    assert result.exit_code == 3, result.output
    assert "drift gate failed" in result.output
    report = (out / "report.md").read_text()
    assert "Drift gate for the shipped variant `int8`: FAILED" in report and "failing: **int8 /" in report
    assert not (out / "model.onnx").exists() and not (out / "manifest.json").exists()
    assert not (tmp_path / "bundle.tar.gz").exists()


def test_existing_output_exits_5_and_keeps_it(built, student, teacher_onnx, corpus, small_recipe):
    out, _ = built
    before = (out / "manifest.json").read_bytes()
    _, result = _build(out.parent, student, teacher_onnx, corpus, small_recipe)
    assert result.exit_code == 5 and "exists already" in result.output
    assert (out / "manifest.json").read_bytes() == before


def test_predict_long_file_per_window_and_mean(student, tmp_path, corpus):
    clips = sorted(corpus.parent.glob("*.flac"))[:3]
    long = tmp_path / "long.flac"
    sf.write(long, np.concatenate([sf.read(c)[0] for c in clips * 3]), 16000)  # 9 s
    result = cli.invoke(app, ["predict", "--model", str(student), str(long), "--csv", str(tmp_path / "o.csv")])
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "o.csv").read_text().splitlines()
    assert rows[0] == "file,window,start_s,arousal,dominance,valence"
    # 2-s windows at 0, 2, 4, 6 s and, for the 1-s tail (half a window), one more ending at 9 s
    assert [r.split(",")[1] for r in rows[1:]] == ["0", "1", "2", "3", "4", "mean"]
    assert [r.split(",")[2] for r in rows[1:-1]] == ["0.000", "2.000", "4.000", "6.000", "7.000"]
    values = np.array([[float(v) for v in r.split(",")[3:]] for r in rows[1:]])
    assert np.allclose(values[:-1].mean(0), values[-1], atol=1e-5)


def test_overwrite_replaces_only_after_the_gate_passes(tmp_path, student, teacher_onnx, corpus, small_recipe):
    out, first = _build(tmp_path, student, teacher_onnx, corpus, small_recipe)
    assert first.exit_code == 0, first.output
    tar = tmp_path / "bundle.tar.gz"
    (out / "stale.txt").write_text("from an older build")
    again = _build(tmp_path, student, teacher_onnx, corpus, small_recipe, "--overwrite")[1]
    assert again.exit_code == 0, again.output
    assert not (out / "stale.txt").exists()
    verify(out)
    verify(tar)
    before = {p: p.read_bytes() for p in (out / "manifest.json", out / "model.onnx", tar)}
    failed = _build(tmp_path, student, teacher_onnx, corpus, small_recipe, "--overwrite", "--float-ops", "")[1]
    assert failed.exit_code == 3, failed.output
    assert {p: p.read_bytes() for p in before} == before  # the previous bundle and archive survive
    report = tmp_path / "bundle.failed" / "report.md"
    assert "FAILED" in report.read_text() and str(report) in failed.output.replace("\n", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "bundle.failed", "bundle.tar.gz"]


def test_overwrite_refuses_a_folder_that_is_not_a_build_output(tmp_path, student, teacher_onnx, corpus,
                                                               small_recipe):
    mine = tmp_path / "bundle"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    result = _build(tmp_path, student, teacher_onnx, corpus, small_recipe, "--overwrite")[1]
    assert result.exit_code == 5 and "not an edgeser build output" in result.output
    assert (mine / "thesis.tex").read_text() == "precious"


def test_report_names_the_held_out_speakers_and_only_files_that_exist(built):
    out, result = built
    report = (out / "report.md").read_text()
    manifest = verify(out)
    held = manifest["data"]["evaluation_names"]
    assert len(held) == manifest["data"]["evaluation_groups"] == 2
    assert f"from 2 speakers ({', '.join(f'`{n}`' for n in held)})" in report
    assert "1 speakers" not in report and "from 1 speaker" not in report
    sizes = report.split("## Sizes")[1].split("\n## ")[0]
    named = re.findall(r"`([^`]+)`", sizes)
    assert named and all((out / name).is_file() for name in named)
    assert "int8 (shipped)" in sizes and "not shipped" in sizes
    assert "drop = |CCC(q,T) - CCC(f,T)|" in result.output and "int8 (shipped)" in result.output
    assert all(f"plots/scatter_int8_{d}.png" in report for d in ("arousal", "dominance", "valence"))
