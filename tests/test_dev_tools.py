"""Developer tools under tools/ that the model cards quote: they run on tiny data and report what they say."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeser import models
from edgeser.audio import list_audio
from edgeser.distill import load_windows
from edgeser.label import LabelConfig, label, read_labels
from edgeser.metrics import ccc
from edgeser.teachers import load_teacher

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(text: str, title: str) -> dict[str, list[float]]:
    """The Markdown table after ``title``: perturbation -> [arousal, dominance, valence]."""
    block = text[text.index(title):].split("\n\n", 2)[1]
    rows = {}
    for line in block.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = [float(c) for c in cells[1:]]
    return rows


@pytest.fixture(scope="module")
def labels(tmp_path_factory: pytest.TempPathFactory, corpus: Path, teacher_onnx: Path) -> Path:
    out = tmp_path_factory.mktemp("stability") / "labels.csv"
    label(list_audio(corpus), load_teacher(teacher_onnx), out, config=LabelConfig(window_seconds=1.0))
    return out


def test_perturbations_keep_the_clip_length() -> None:
    clip = np.sin(np.linspace(0, 200, 16_000)).astype(np.float32)
    for name, f, _ in _tool("teacher_stability").perturbations(np.random.default_rng(0)):
        assert f(clip).shape == clip.shape, name


def test_teacher_stability_reports_self_agreement_and_the_student(
    labels: Path, teacher_onnx: Path, student: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tool = _tool("teacher_stability")
    assert tool.main(["--labels", str(labels), "--teacher", str(teacher_onnx), "--repeats", "1",
                      "--student", str(student)]) == 0
    text = capsys.readouterr().out
    teacher_rows = _rows(text, "CCC(teacher(perturbed), teacher(clean))")
    student_rows = _rows(text, "CCC(student(perturbed), teacher(perturbed))")
    names = [name for name, _, _ in tool.perturbations(np.random.default_rng(0))]
    assert list(teacher_rows) == names and list(student_rows) == ["none", *names]
    assert all(-1.0 <= v <= 1.0 for row in teacher_rows.values() for v in row)
    # The unperturbed row is the plain CCC(student, teacher) on the clips.
    table = read_labels(labels)
    x = load_windows(table, 16_000)
    with torch.no_grad():
        direct = ccc(models.load(student).eval()(torch.from_numpy(x)).numpy(), load_teacher(teacher_onnx)(x))
    assert np.allclose(student_rows["none"], direct, atol=6e-4)
    assert re.search(r"^\| white noise 10 dB SNR \|", text, re.M)
