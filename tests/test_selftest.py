"""The bundle's self-test: the build's held-out windows, run again through the device's own engine."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeser.bundle import verify
from edgeser.cli import app
from edgeser.runtime.integrity import sha256_file
from edgeser.runtime.selftest import judge, read_selftest

pytestmark = pytest.mark.slow
cli = CliRunner()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, student, teacher_onnx, corpus, small_recipe):
    out = tmp_path_factory.mktemp("selftest") / "bundle"
    result = cli.invoke(app, ["build", "--recipe", str(small_recipe), "--student", str(student), "--teacher",
                              str(teacher_onnx), "--audio", str(corpus), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    return out


def _runner(folder, *args):
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=folder, capture_output=True, text=True,
                          timeout=120)


def _swap_model(folder, model_bytes):
    """Replace the model and re-hash it in the manifest, as someone shipping another model would."""
    (folder / "model.onnx").write_bytes(model_bytes)
    manifest = json.loads((folder / "manifest.json").read_text())
    digest = sha256_file(folder / "model.onnx")
    manifest["files"]["model.onnx"] = manifest["model"]["sha256"] = digest
    (folder / "manifest.json").write_text(json.dumps(manifest))
    verify(folder)  # consistent again: only the self-test can tell


def test_fresh_bundle_passes_its_self_test(bundle):
    manifest = verify(bundle)
    assert manifest["selftest"]["host"]["passed"] is True
    assert {"selftest/windows.wav", "selftest/expected.json"} <= set(manifest["files"])
    windows, expected = read_selftest(bundle)
    assert windows.shape == (expected["windows"], manifest["input"]["window_samples"])
    run = _runner(bundle, "--self-test")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "self-test PASSED" in run.stdout
    for dim in ("arousal", "dominance", "valence"):
        assert any(line.startswith(dim) and line.endswith("yes") for line in run.stdout.splitlines())


def test_replaced_model_fails_the_self_test_with_exit_3(bundle, tmp_path, teacher_onnx):
    worse = shutil.copytree(bundle, tmp_path / "worse")
    _swap_model(worse, teacher_onnx.read_bytes())
    run = _runner(worse, "--self-test")
    assert run.returncode == 3, run.stdout + run.stderr
    assert "self-test FAILED" in run.stdout and "CCC(device, float)" in run.stdout


def test_judge_fails_each_condition_alone():
    rng = np.random.default_rng(0)
    fl = rng.uniform(0, 1, (8, 3))
    teacher = fl + rng.normal(0, 0.05, (8, 3))
    expected = {"float": fl, "teacher": teacher, "shipped": fl, "variant": "int8",
                "budget": {"max_ccc_drop": 0.01, "min_ccc_vs_float": 0.98}}
    assert judge(fl, expected).passed
    shifted = fl + 0.12  # CCC(device, float) falls; the correlation with the teacher does not change much
    result = judge(shifted, expected)
    assert not result.passed and all("CCC(device, float)" in r.reasons[0] for r in result.rows)
    loose = {**expected, "budget": {"max_ccc_drop": 10.0, "min_ccc_vs_float": 0.5}}
    assert judge(shifted, loose).passed
    strict_drop = {**expected, "budget": {"max_ccc_drop": 1e-9, "min_ccc_vs_float": 0.0}}
    noisy = fl + rng.normal(0, 0.01, (8, 3))
    assert not judge(noisy, strict_drop).passed and judge(fl, strict_drop).passed
    assert not judge(np.full((8, 3), np.nan), loose).passed


def test_install_refuses_a_bundle_that_fails_its_self_test(bundle, tmp_path, teacher_onnx):
    worse = shutil.copytree(bundle, tmp_path / "install")
    _swap_model(worse, teacher_onnx.read_bytes())
    env = {**os.environ, "PYTHON": sys.executable, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    run = subprocess.run(["bash", str(worse / "install.sh"), "--service"], capture_output=True, text=True,
                         timeout=600, env=env)
    assert run.returncode == 3, run.stdout + run.stderr
    assert "the service was not installed" in run.stderr
    assert "service started" not in run.stdout
