"""Developer tools under tools/ that the model cards quote: they run on tiny data and report what they say."""

from __future__ import annotations

import importlib.util
import json
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


@pytest.fixture(scope="module")
def default_labels(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    """The tiny corpus labelled by the embedded default teacher (the hint probe reads its internals)."""
    out = tmp_path_factory.mktemp("hint") / "labels.csv"
    label(list_audio(corpus), load_teacher("default"), out, config=LabelConfig(window_seconds=1.0))
    return out


def test_the_hint_probe_trains_the_default_recipe_and_saves_its_history(default_labels: Path, tmp_path: Path) -> None:
    out = tmp_path / "hint.safetensors"
    assert _tool("probe_hint_distillation").main(
        ["--labels", str(default_labels), "--out", str(out), "--epochs", "2", "--windows-per-epoch", "16",
         "--val-speakers", "spk3"]) == 0
    student = models.load(out)
    assert student.cfg.n_fft == 512 and student.cfg.hop_length == 256  # F3's layout: the shipped default's
    assert student.cfg.head_hidden == 0  # less its softmax head
    history = json.loads(models.read_metadata(out)["extra"])["history"]
    assert [h["epoch"] for h in history] == [1, 2] and all(len(h["val_ccc"]) == 3 for h in history)


def test_the_statistics_probe_scores_every_set_on_both_held_out_sets(default_labels: Path, capsys) -> None:
    assert _tool("probe_statistics_mlp").main(
        ["--labels", str(default_labels), "--eval-labels", str(default_labels), "--val-speakers", "spk3"]) == 0
    rows = re.findall(r"^\| ([a-z:A-Z -]+) \| (\d+) \| ([-\d. /]+) \| ([-\d. /]+) \|$", capsys.readouterr().out, re.M)
    widths = {name: int(width) for name, width, _, _ in rows}
    assert widths == {"teacher: all": 118, "teacher: MFCC only": 76, "teacher: no MFCC": 42, "teacher: no pitch": 103,
                      "log-mel: all frames": 104, "log-mel: speech frames": 104, "shape: speech frames": 104}
    for _, _, val, other in rows:
        assert all(-1.0 <= float(c) <= 1.0 for c in (val + " / " + other).split(" / "))


F3_LESS = ("head_hidden", "head_softmax", "shape_stats")
"""What the probes drop from the default's recipe to replay F3's (tools/probe_proto_head.py)."""


def test_the_speech_statistics_probe_matches_the_library_layout_it_became() -> None:
    from edgeser.defaults import default_student_path
    from edgeser.distill import config_of

    tool = _tool("probe_mel_stats")
    recipe = config_of(default_student_path(), without=("shape_stats",))
    assert recipe.student_config["head_softmax"] == 1  # KL1's recipe
    torch.manual_seed(0)
    x = torch.randn(2, 16_000) * 0.1
    x[1, 9_000:] = 0.0
    tool.register(centre=True)
    probe = models.create_model("wav2small.stats", **recipe.student_config).eval()
    library = models.create_model("wav2small", **recipe.student_config, shape_stats=1).eval()
    state = {("vgg7." + k if k.startswith("stats_norm.") else k): v for k, v in probe.state_dict().items()}
    library.load_state_dict(state)
    with torch.no_grad():
        # the library's loudness is within 0.26 dB of the probe's log, so a frame near the 35 dB threshold
        # (a sigmoid 2 dB wide) can weigh a few percent more or less: close, not equal
        assert torch.allclose(probe(x), library(x), atol=1e-2)
        probe_stats, library_stats = probe.stats(probe.vgg7.features(x)), library.vgg7(x)[:, -104:]
        assert torch.allclose(probe.stats_norm(probe_stats), library_stats, atol=0.05)
    tool.register(centre=False)  # the plain log-mel: not the library's statistics
    plain = models.create_model("wav2small.stats", **recipe.student_config).eval()
    with torch.no_grad():
        assert not torch.allclose(plain.stats(plain.vgg7.features(x)), probe_stats, atol=1e-2)


def test_the_std_pooling_probe_registers_a_student_that_trains_on_the_default_recipe() -> None:
    from edgeser.defaults import default_student_path
    from edgeser.distill import config_of

    _tool("probe_std_pooling").register()
    recipe = config_of(default_student_path(), without=F3_LESS)
    model = models.create_model("wav2small.std", **recipe.student_config)
    plain = models.create_model(recipe.student, **recipe.student_config)
    extra = model.cfg.channels * model.cfg.pooled_width
    assert model.adv.in_features == plain.cfg.hidden + extra
    assert model(torch.randn(2, 16_000)).shape == (2, 3)


def test_the_prototype_head_probe_gives_a_weighted_mean_of_its_learnt_prototypes() -> None:
    from edgeser.defaults import default_student_path
    from edgeser.distill import config_of

    _tool("probe_proto_head").register(5)
    recipe = config_of(default_student_path(), without=F3_LESS)
    model = models.create_model("wav2small.proto", **recipe.student_config).eval()
    assert model.adv.out_features == 5 and model.proto.shape == (5, 3)
    with torch.no_grad():
        model.proto.copy_(torch.tensor([[0.0, 1.0, 0.2], [1.0, 0.0, 0.9], [0.5] * 3, [0.3] * 3, [0.7] * 3]))
        out = model(torch.randn(4, 16_000))
    lo, hi = model.proto.min(0).values, model.proto.max(0).values
    assert out.shape == (4, 3) and bool(((out >= lo - 1e-6) & (out <= hi + 1e-6)).all())
    assert {n for n, p in model.named_parameters() if p.requires_grad} >= {"proto", "adv.weight", "adv.bias"}
