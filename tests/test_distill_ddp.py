"""Distributed distillation: real gloo process groups of 2 CPU processes, started by ``--nproc`` and by torchrun."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeser import models
from edgeser.audio import list_audio
from edgeser.distill import checkpoint_paths
from edgeser.distill.ddp import FINGERPRINTS_ENV
from edgeser.label import LabelConfig, label
from edgeser.teachers import load_teacher

pytestmark = pytest.mark.slow

RUN = ["--epochs", "2", "--batch-size", "8", "--windows-per-epoch", "48", "--student-config", "channels=4",
       "--val-speakers", "spk3", "--noise-prob", "0.5", "--mix-prob", "0.3", "--quiet"]
"""A tiny run, augmented (so that each rank's own random numbers matter)."""

LIMIT_S = 300
"""No run here may take longer: a process waiting forever for a dead one fails the test."""


@pytest.fixture(scope="module")
def labels(tmp_path_factory: pytest.TempPathFactory, corpus: Path, teacher_onnx: Path) -> Path:
    out = tmp_path_factory.mktemp("ddp") / "labels.csv"
    label(list_audio(corpus), load_teacher(teacher_onnx), out, config=LabelConfig(window_seconds=0.5))
    return out


@pytest.fixture(scope="module")
def edgeser_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The installed ``edgeser`` entry point (a script torchrun can start), or an equivalent one."""
    found = shutil.which("edgeser", path=str(Path(sys.executable).parent))
    if found:
        return Path(found)
    script = tmp_path_factory.mktemp("bin") / "edgeser"
    script.write_text("from edgeser.cli import app\napp(prog_name='edgeser')\n", encoding="utf-8")
    return script


def _run(command: list[str], fingerprints: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, FINGERPRINTS_ENV: str(fingerprints)}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=LIMIT_S, check=False)


def _distill(script: Path, labels: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, str(script), "distill", "--labels", str(labels), "--out", str(out), *RUN,
                 *extra], out.parent / "fingerprints")


def _sha256(model: torch.nn.Module) -> str:
    """sha256 of the weights and buffers by sorted name, batch-norm step counters left out (as checkpoints),
    -0.0 as 0.0."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if not name.endswith("num_batches_tracked"):
            h.update(name.encode())
            h.update((tensor.detach().float() + 0.0).contiguous().numpy().tobytes())
    return h.hexdigest()


def _ranks(out: Path) -> list[dict[str, object]]:
    return [json.loads((out.parent / "fingerprints" / f"rank{r}.json").read_text()) for r in range(2)]


def _checked(result: subprocess.CompletedProcess[str], out: Path) -> list[dict[str, object]]:
    """A finished 2-process run: no traceback, both ranks ended with the weights saved as the last checkpoint."""
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, result.stderr
    ranks = _ranks(out)
    assert [r["rank"] for r in ranks] == [0, 1] and {r["world_size"] for r in ranks} == {2}
    assert ranks[0]["model"] == ranks[1]["model"] and ranks[0]["evaluated"] == ranks[1]["evaluated"]
    assert ranks[0]["evaluated"] == _sha256(models.load(checkpoint_paths(out)[0]))
    return ranks


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory, edgeser_script: Path, labels: Path) -> Path:
    """``edgeser distill --nproc 2`` for 2 epochs; returns its --out."""
    out = tmp_path_factory.mktemp("straight") / "s.safetensors"
    result = _distill(edgeser_script, labels, out, "--nproc", "2")
    _checked(result, out)
    assert "best epoch" in result.stdout and result.stdout.count("best epoch") == 1
    return out


def test_two_processes_end_with_the_same_weights_and_the_checkpoint_predicts(straight: Path) -> None:
    extra = json.loads(models.read_metadata(straight)["extra"])
    assert (extra["processes"], extra["device"], extra["epochs"]) == (2, "cpu", 2)
    assert extra["train_windows"] == 72 and extra["val_speakers"] == ["spk3"]
    state = torch.load(checkpoint_paths(straight)[1], weights_only=True)
    assert state["world_size"] == 2 and len(state["ranks"]) == 2
    assert state["ranks"][0]["augment_rng"] == state["augment_rng"]
    assert state["ranks"][0]["augment_rng"] != state["ranks"][1]["augment_rng"]  # each rank augments its own way
    model = models.load(straight)
    x = np.stack([0.1 * np.sin(np.arange(8000, dtype=np.float32) * f) for f in (0.01, 0.03)]).astype(np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy()
    assert y.shape == (2, 3) and np.isfinite(y).all()


def test_two_processes_differ_from_one(straight: Path, edgeser_script: Path, labels: Path, tmp_path: Path) -> None:
    """Each rank trains on its own half of the windows: not the single process's run done twice."""
    out = tmp_path / "one.safetensors"
    result = _distill(edgeser_script, labels, out)
    assert result.returncode == 0, result.stderr
    one = json.loads((tmp_path / "fingerprints" / "rank0.json").read_text())
    assert one["world_size"] == 1 and one["evaluated"] != _ranks(straight)[0]["evaluated"]


def test_resume_continues_a_two_process_run_with_an_online_teacher_and_ema(
    edgeser_script: Path, labels: Path, teacher_onnx: Path, tmp_path: Path
) -> None:
    out = tmp_path / "s.safetensors"
    online = ("--teacher", str(teacher_onnx), "--ema", "0.9")  # each rank relabels its own augmented windows
    first = _distill(edgeser_script, labels, out, "--nproc", "2", "--epochs", "1", *online)
    first_ranks = _checked(first, out)
    before = json.loads(torch.load(checkpoint_paths(out)[1], weights_only=True)["history"])
    resumed = _distill(edgeser_script, labels, out, "--nproc", "2", "--epochs", "3", "--resume", *online)
    ranks = _checked(resumed, out)
    state = torch.load(checkpoint_paths(out)[1], weights_only=True)
    after = json.loads(state["history"])
    assert [h["epoch"] for h in after] == [1, 2, 3] and after[0] == before[0]  # epoch 1 kept, 2 and 3 trained
    assert json.loads(models.read_metadata(checkpoint_paths(out)[0])["extra"])["epoch"] == 3
    assert ranks[0]["model"] != first_ranks[0]["model"] and len(state["ranks"]) == 2
    assert json.loads(state["config"])["teacher"] == str(teacher_onnx) and "ema" in state
    assert ranks[0]["model"] != ranks[0]["evaluated"]  # the saved (and agreed) weights are the moving average


def test_an_external_torchrun_starts_the_same_run(straight: Path, edgeser_script: Path, labels: Path,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "s.safetensors"
    result = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                   str(edgeser_script), "distill", "--labels", str(labels), "--out", str(out), *RUN],
                  tmp_path / "fingerprints")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("best epoch") == 1  # rank 0 reports
    assert _ranks(out) == _ranks(straight)  # torchrun and --nproc run the same training
    assert models.load(out).arch == "wav2small"


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_an_error_on_rank_1_ends_the_run_with_its_line(straight: Path, edgeser_script: Path, labels: Path,
                                                       tmp_path: Path) -> None:
    out = tmp_path / "s.safetensors"
    for name in (straight.name, *(p.name for p in checkpoint_paths(straight))):
        shutil.copy(straight.parent / name, out.parent / name)
    state_path = checkpoint_paths(out)[1]
    state = torch.load(state_path, weights_only=True)
    state["ranks"][1]["augment_rng"] = "not a random state"
    torch.save(state, state_path)
    saved = {p: p.read_bytes() for p in (out, checkpoint_paths(out)[0])}
    t0 = time.monotonic()
    result = _distill(edgeser_script, labels, out, "--nproc", "2", "--resume", "--epochs", "3")
    assert result.returncode == 2, result.stdout + result.stderr
    line = _one_error_line(result)
    assert line.startswith(f"error: rank 1: {state_path}: not a training state written by edgeser distill"), line
    assert time.monotonic() - t0 < LIMIT_S / 2
    assert {p: p.read_bytes() for p in saved} == saved  # rank 0 did not go on alone


def test_an_error_on_rank_0_ends_the_run_with_its_line(edgeser_script: Path, labels: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.safetensors"
    checkpoint_paths(out)[1].mkdir()  # rank 0 cannot write the training state; rank 1 waits at the barrier
    result = _distill(edgeser_script, labels, out, "--nproc", "2", "--epochs", "1")
    assert result.returncode == 5, result.stdout + result.stderr
    line = _one_error_line(result)
    assert line == f"error: {checkpoint_paths(out)[1]}: cannot write training state (Is a directory)"
