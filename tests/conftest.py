"""Shared fixtures: tiny synthetic audio, a tiny ONNX teacher and a tiny fitted Wav2Small student."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edgeser import testing

SR = 16_000


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep edgeser's export cache (``edgeser live`` / ``predict`` on a checkpoint) out of the user's home."""
    monkeypatch.setenv("EDGESER_CACHE", str(tmp_path_factory.getbasetemp() / "edgeser-cache"))


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="session")
def corpus(tiny_dir: Path) -> Path:
    """48 one-second clips from 4 synthetic 'speakers'; returns list.csv (file, speaker)."""
    return testing.synth_corpus(tiny_dir / "audio", speakers=4, clips=12)


@pytest.fixture(scope="session")
def teacher_onnx(tiny_dir: Path) -> Path:
    return testing.tiny_teacher_onnx(tiny_dir / "teacher.onnx")


@pytest.fixture(scope="session")
def student(tiny_dir: Path, corpus: Path) -> Path:
    """A Wav2Small fitted to the tiny teacher in closed form (a few seconds)."""
    return testing.tiny_student(tiny_dir / "student.safetensors", corpus)


@pytest.fixture(scope="session")
def stats_student(tiny_dir: Path, corpus: Path) -> Path:
    """The same, with the speech statistics beside the pooled feature (``shape_stats=1``)."""
    return testing.tiny_student(tiny_dir / "stats_student.safetensors", corpus, shape_stats=1)


@pytest.fixture(scope="session")
def small_recipe(tiny_dir: Path) -> Path:
    """The rpi recipe with calibration/evaluation sizes that fit the tiny corpus."""
    from edgeser.resources import recipes_dir

    text = (recipes_dir() / "rpi.toml").read_text(encoding="utf-8")
    text = text.replace("calibration_windows = 48", "calibration_windows = 16")
    text = text.replace("min_evaluation_windows = 32", "min_evaluation_windows = 16")
    text = text.replace("window_seconds = 2.0", "window_seconds = 1.0")  # the tiny clips are 1 s
    path = tiny_dir / "rpi-small.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def wav(tmp_path: Path):
    """Write a float32 signal to a WAV file: wav(signal, rate=16000, name='x.wav') -> Path."""

    def write(signal: np.ndarray, rate: int = SR, name: str = "x.wav", subtype: str = "FLOAT") -> Path:
        path = tmp_path / name
        sf.write(path, signal, rate, subtype=subtype)
        return path

    return write
