"""The Android bundle's self-test class (plain Java), run on the JVM against Python's judge (skipped without javac)."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edgeser.resources import targets_dir
from edgeser.runtime.selftest import SELFTEST_AUDIO, as_pcm16, judge, read_selftest, write_selftest

pytestmark = pytest.mark.skipif(shutil.which("javac") is None or shutil.which("java") is None,
                                reason="needs a JDK (javac, java)")

WINDOWS, WINDOW_SAMPLES = 8, 1600
BUDGET = {"max_ccc_drop": 0.01, "min_ccc_vs_float": 0.98}


@pytest.fixture(scope="module")
def classes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("jvm")
    java = targets_dir() / "android" / "java" / "edgeser" / "android"
    sources = [java / "AdvWindower.java", java / "AdvSelfTest.java",
               Path(__file__).parent / "android" / "AdvSelfTestTest.java"]
    subprocess.run(["javac", "-Xlint:all", "-Werror", "-d", str(out), *map(str, sources)], check=True,
                   capture_output=True, text=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A folder with only the self-test files, written by the build's own writer with known numbers."""
    folder = tmp_path_factory.mktemp("selftest-bundle")
    rng = np.random.default_rng(18)
    windows = as_pcm16(rng.uniform(-0.5, 0.5, (WINDOWS, WINDOW_SAMPLES)))
    fl = rng.uniform(0.1, 0.9, (WINDOWS, 3))
    outputs = {"float": fl, "teacher": fl + rng.normal(0, 0.05, fl.shape),
               "shipped": fl + rng.normal(0, 0.002, fl.shape)}
    write_selftest(folder, windows, outputs, variant="int8", budget=BUDGET, sampling_rate=16_000)
    return folder


def _java(classes: Path, *args: str) -> str:
    proc = subprocess.run(["java", "-cp", str(classes), "AdvSelfTestTest", *args], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _run(classes: Path, folder: Path, device: np.ndarray, tmp_path: Path) -> tuple[list[str], dict, str]:
    """Java's windows, rows and table for a Predictor that returns ``device`` (float32) row by row."""
    rows_file = tmp_path / "device.txt"
    rows_file.write_text("\n".join(" ".join(_java_number(v) for v in row) for row in device) + "\n")
    out = _java(classes, "run", str(folder), str(rows_file))
    head, table = out.split("\ntable\n")
    lines = head.splitlines()
    rows = {p[1]: [float(v) for v in p[2:6]] + [p[6] == "true"] for p in (line.split() for line in lines)
            if p[0] == "row"}
    windows = [line.split()[1:] for line in lines if line.startswith("window ")]
    assert lines[-1] in ("passed true", "passed false")
    return windows, {"rows": rows, "passed": lines[-1] == "passed true"}, table.rstrip("\n")


def _java_number(value: float) -> str:
    """A number as Java's Double.parseDouble reads it (NaN and Infinity are spelled out)."""
    return repr(float(value)).replace("nan", "NaN").replace("inf", "Infinity")


def _same(java: float, python: float) -> bool:
    if math.isnan(python):
        return math.isnan(java)
    return math.isclose(java, python, rel_tol=1e-9, abs_tol=1e-12)


def _check_against_python(java: dict, table: str, device: np.ndarray, expected: dict) -> None:
    result = judge(device, expected)
    assert java["passed"] is result.passed
    for r in result.rows:
        ccc_, drop, max_float, max_build, ok = java["rows"][r.dimension]
        assert ok is r.passed
        for mine, theirs in ((ccc_, r.ccc_vs_float), (drop, r.drop), (max_float, r.max_abs_vs_float),
                             (max_build, r.max_abs_vs_build)):
            assert _same(mine, theirs), (r.dimension, mine, theirs)
    assert table.splitlines() == result.lines()


def test_java_checks_pass(classes):
    assert _java(classes).strip().endswith("passed, 0 failed")


def test_java_reads_the_windows_python_wrote(classes, bundle, tmp_path):
    windows, expected = read_selftest(bundle)
    device = np.asarray(expected["shipped"], np.float32)
    seen, _, _ = _run(classes, bundle, device, tmp_path)
    assert len(seen) == WINDOWS
    for i, (index, total, first) in enumerate(seen):
        assert int(index) == i
        assert np.float32(first) == windows[i, 0]
        assert math.isclose(float(total), float(windows[i].astype(np.float64).sum()), rel_tol=1e-9, abs_tol=1e-9)


def test_the_build_hosts_outputs_pass_and_match_python(classes, bundle, tmp_path):
    _, expected = read_selftest(bundle)
    device = np.asarray(expected["shipped"], np.float32)
    _, java, table = _run(classes, bundle, device, tmp_path)
    assert java["passed"] is True
    _check_against_python(java, table, device, expected)
    assert table.endswith("self-test PASSED")


def test_shifted_outputs_fail_on_ccc_vs_float_and_match_python(classes, bundle, tmp_path):
    _, expected = read_selftest(bundle)
    device = (np.asarray(expected["shipped"]) + 0.12).astype(np.float32)
    _, java, table = _run(classes, bundle, device, tmp_path)
    assert java["passed"] is False
    assert all(not row[4] for row in java["rows"].values())
    assert all("CCC(device, float)" in line for line in table.splitlines()[2:5])
    _check_against_python(java, table, device, expected)


def test_non_finite_and_noisy_outputs_match_python(classes, bundle, tmp_path):
    _, expected = read_selftest(bundle)
    rng = np.random.default_rng(3)
    noisy = (np.asarray(expected["shipped"]) + rng.normal(0, 0.03, (WINDOWS, 3))).astype(np.float32)
    noisy[2, 1] = np.nan
    _, java, table = _run(classes, bundle, noisy, tmp_path)
    assert java["passed"] is False and "non-finite output" in table
    _check_against_python(java, table, noisy, expected)


def test_number_formats_match_python(classes):
    values = [0.98, 0.01, 1.2345e-7, 0.0, -0.0, -1e-9, 123456789.0, 0.000123456, 2.5e-5, 1e-4, 0.99995,
              0.125, 0.000125, 1234567.0, 999999.5, 0.9999996, float("nan"), float("inf")]
    out = _java(classes, "format", *map(_java_number, values))
    for v, line in zip(values, out.splitlines(), strict=True):
        assert line.split("|") == [f"{v:.5f}", f"{v:.4f}", f"{v:.3g}", f"{v:g}"], v


@pytest.mark.parametrize(("damage", "message"), [
    (lambda f: (f / SELFTEST_AUDIO).write_bytes(b"not a wav"), "selftest/windows.wav: not a RIFF/WAVE file"),
    (lambda f: (f / SELFTEST_AUDIO).write_bytes((f / SELFTEST_AUDIO).read_bytes()[:-2]), "runs past the end"),
    (lambda f: sf.write(f / SELFTEST_AUDIO, np.zeros(WINDOWS * WINDOW_SAMPLES - 1), 16_000, subtype="PCM_16"),
     f"holds {WINDOWS * WINDOW_SAMPLES - 1} samples"),
    (lambda f: sf.write(f / SELFTEST_AUDIO, np.zeros(WINDOWS * WINDOW_SAMPLES), 16_000, subtype="FLOAT"),
     "expected 16-bit PCM mono, got format 3"),
    (lambda f: (f / "selftest/expected.json").write_text('{"windows": 8'), "not valid JSON"),
])
def test_a_damaged_self_test_is_refused_naming_the_file(classes, bundle, tmp_path, damage, message):
    folder = shutil.copytree(bundle, tmp_path / "damaged")
    damage(folder)
    out = _java(classes, "read", str(folder)).strip()
    assert out.startswith("error: ") and message in out, out


def test_an_intact_self_test_reads(classes, bundle):
    assert _java(classes, "read", str(bundle)).strip() == f"ok {WINDOWS} {WINDOW_SAMPLES}"
