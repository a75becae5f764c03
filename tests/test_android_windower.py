"""The Android bundle's plain Java windowing class, compiled and run on the JVM (skipped without javac)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgeser.audio import windows
from edgeser.resources import targets_dir

pytestmark = pytest.mark.skipif(shutil.which("javac") is None or shutil.which("java") is None,
                                reason="needs a JDK (javac, java)")


@pytest.fixture(scope="module")
def classes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("jvm")
    android = targets_dir() / "android"
    sources = [android / "java" / "edgeser" / "android" / "AdvWindower.java",
               Path(__file__).parent / "android" / "AdvWindowerTest.java"]
    subprocess.run(["javac", "-Xlint:all", "-Werror", "-d", str(out), *map(str, sources)], check=True,
                   capture_output=True, text=True, timeout=120)
    return out


def test_java_checks_pass(classes):
    proc = subprocess.run(["java", "-cp", str(classes), "AdvWindowerTest"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("passed, 0 failed")


@pytest.mark.parametrize("chunk", [160, 1024, 20_000])
def test_java_windows_match_the_python_windows(classes, tmp_path, chunk):
    """AudioRecord-sized reads give the windows edgeser.audio.windows cuts from the same PCM."""
    rng = np.random.default_rng(5)
    pcm = (rng.standard_normal(40_000) * 3000).clip(-32768, 32767).astype("<i2")
    (tmp_path / "x.pcm").write_bytes(pcm.tobytes())
    window, hop = 16_000, 4_000
    proc = subprocess.run(["java", "-cp", str(classes), "AdvWindowerTest", "dump", str(tmp_path / "x.pcm"),
                           str(window), str(hop), str(chunk)], capture_output=True, text=True, timeout=60, check=True)
    rows = np.array([[float(v) for v in line.split()] for line in proc.stdout.splitlines()])
    expected = windows(pcm.astype(np.float32) / 32768, window, hop)
    assert len(rows) == len(expected) == (len(pcm) - window) // hop + 1
    assert np.allclose(rows[:, 1], expected[:, 0], atol=1e-9)
    assert np.allclose(rows[:, 2], expected.astype(np.float64).sum(1), atol=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("kotlinc") is None, reason="needs kotlinc (Debian: apt-get install kotlin)")
def test_kotlin_class_compiles_against_the_documented_api(tmp_path):
    """EdgeserAdv.kt against compile-only stubs of the Android and LiteRT classes it uses (tests/android/stubs)."""
    stubs = sorted(str(p) for p in (Path(__file__).parent / "android" / "stubs").rglob("*.java"))
    java = sorted(str(p) for p in (targets_dir() / "android" / "java").rglob("*.java"))  # AdvWindower, AdvSelfTest
    subprocess.run(["javac", "-d", str(tmp_path / "cls"), *stubs, *java], check=True, capture_output=True,
                   timeout=120)
    kotlin = targets_dir() / "android" / "kotlin" / "edgeser" / "android" / "EdgeserAdv.kt"
    proc = subprocess.run(["kotlinc", "-cp", str(tmp_path / "cls"), "-d", str(tmp_path / "out"), str(kotlin)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "out" / "edgeser" / "android" / "EdgeserAdv.class").is_file()
