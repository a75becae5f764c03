"""End-to-end: `edgeser build --target android/coral` from tiny models, then the bundle's own runner."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeser.bundle import verify
from edgeser.cli import app
from edgeser.resources import recipes_dir

pytest.importorskip("litert_torch", reason="needs edgeser[tflite]")
pytest.importorskip("ai_edge_quantizer", reason="needs edgeser[tflite]")
pytestmark = pytest.mark.slow
cli = CliRunner()


def _small_recipe(tmp: Path, target: str) -> Path:
    """The target's recipe at the tiny corpus's size (1 s clips, 48 of them)."""
    text = (recipes_dir() / f"{target}.toml").read_text(encoding="utf-8")
    text = text.replace("window_seconds = 2.0", "window_seconds = 1.0")
    text = text.replace("calibration_windows = 64", "calibration_windows = 16")
    text = text.replace("min_evaluation_windows = 32", "min_evaluation_windows = 16")
    # the tiny student is a random-conv toy: this checks the pipeline, the real budget is in the recipe
    text = re.sub(r"max_ccc_drop = [0-9.]+", "max_ccc_drop = 0.05", text)
    text = re.sub(r"min_ccc_vs_float = [0-9.]+", "min_ccc_vs_float = 0.9", text)
    path = tmp / f"{target}-small.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module", params=["android", "coral"])
def bundle(request, tmp_path_factory, student, teacher_onnx, corpus):
    target = request.param
    tmp = tmp_path_factory.mktemp(f"build-{target}")
    out = tmp / "bundle"
    args = ["build", "--recipe", str(_small_recipe(tmp, target)), "--student", str(student),
            "--teacher", str(teacher_onnx), "--audio", str(corpus), "--out", str(out), "--quiet"]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    return target, out


def test_bundle_is_complete_and_verifies(bundle):
    target, out = bundle
    manifest = verify(out)
    assert manifest["runtime"]["backend"] == "litert" and manifest["model"]["file"] == "model.tflite"
    assert manifest["model"]["variant"] == "int8"  # what both recipes ship
    assert (out / "model.tflite").read_bytes()[4:8] == b"TFL3"
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"runner/__main__.py", "runner/edgeser_runtime/litert.py", "runner/edgeser_runtime/frontend.py",
            "requirements.txt", "README.md", "report.md"} <= names
    spec = manifest["input"]
    assert spec["fixed_length"] is True and spec["window_samples"] == 16_000
    if target == "android":
        assert {"kotlin/edgeser/android/EdgeserAdv.kt", "java/edgeser/android/AdvWindower.java"} <= names
        assert spec["frontend"] == "model" and spec["input_name"] == "waveform"
    else:
        assert spec["frontend"] == "cpu-logmel" and spec["input_quant"] and spec["output_quant"]


def test_coral_model_is_int8_throughout(bundle):
    target, out = bundle
    if target != "coral":
        pytest.skip("coral only")
    from edgeser.export.tflite import op_audit

    rows = op_audit(out / "model.tflite")
    assert rows and all(r["int8"] for r in rows), [r for r in rows if not r["int8"]]


def test_bundle_runner_in_a_subprocess(bundle, corpus):
    target, out = bundle
    clips = sorted(corpus.parent.glob("*.flac"))[:2]
    extra = ["--cpu"] if target == "coral" else []
    proc = subprocess.run([sys.executable, "-m", "runner", "--json", *extra, *map(str, clips)], cwd=out,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 2
    assert all(set(r) >= {"arousal", "dominance", "valence"} for r in lines)
    assert all(-0.5 < r["arousal"] < 1.5 for r in lines)
