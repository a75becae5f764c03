"""Tiny audio, teachers and students for tests and examples (the same code path users run, at toy size).

Like audonnx's ``create_model`` or piper's generated test voice: everything here is synthesised, so
tests need no data set and no network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np

from .runtime.spec import SAMPLING_RATE

__all__ = ["synth_clip", "synth_corpus", "tiny_teacher_onnx", "tiny_student", "with_relu_head", "tiny_bundle",
           "TINY_SECONDS"]

TINY_SECONDS = 1.0


def synth_clip(rng: np.random.Generator, *, seconds: float = TINY_SECONDS, f0_range: tuple[float, float] = (90, 350),
               sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """A voiced-speech-like tone: harmonics with random pitch glide, brightness, amplitude modulation and noise."""
    n = int(seconds * sampling_rate)
    t = np.arange(n) / sampling_rate
    f0 = rng.uniform(*f0_range) * (1 + rng.uniform(-0.15, 0.15) * t / seconds)
    phase = 2 * np.pi * np.cumsum(f0) / sampling_rate
    tilt = rng.uniform(0.3, 2.5)
    x = sum(np.sin(k * phase) / k**tilt for k in range(1, 16) if k * f0.max() < sampling_rate / 2)
    am = 1 + rng.uniform(0, 0.9) * np.sin(2 * np.pi * rng.uniform(1, 8) * t)
    x = x * am
    x = x / np.abs(x).max()
    x = x + rng.standard_normal(n) * 10 ** (-rng.uniform(20, 40) / 20)
    return cast(np.ndarray, (x * rng.uniform(0.05, 0.5)).astype(np.float32))


def synth_corpus(folder: Path, *, speakers: int = 4, clips: int = 8, seconds: float = TINY_SECONDS,
                 seed: int = 0) -> Path:
    """Write ``speakers * clips`` FLAC files and a ``list.csv`` (file, speaker); returns the csv path."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = ["file,speaker"]
    for s in range(speakers):
        lo = 90 + 25 * s
        for c in range(clips):
            name = f"spk{s}_{c:03d}.flac"
            sf.write(folder / name, synth_clip(rng, seconds=seconds, f0_range=(lo, lo + 200)), SAMPLING_RATE)
            rows.append(f"{name},spk{s}")
    csv = folder / "list.csv"
    csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return csv


def _teacher_module() -> Any:
    import torch
    from torch import nn

    from .models.frontend import Spectrogram, prenorm

    class TinyTeacher(nn.Module):
        """A/D/V from spectral centroid, low-band share and high-band share: smooth and deterministic."""

        def __init__(self) -> None:
            super().__init__()
            self.spec = Spectrogram(n_fft=256, hop_length=128)
            self.register_buffer("freqs", torch.linspace(0, 1, 129)[None, :, None])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            p = self.spec(prenorm(x)) + 1e-6  # (B, F, frames)
            total = p.sum(1)  # (B, frames)
            centroid = ((p * self.freqs).sum(1) / total).mean(1)
            low = (p[:, :12].sum(1) / total).mean(1)
            high = (p[:, 24:].sum(1) / total).mean(1)
            a = torch.sigmoid((centroid - 0.08) * 40)
            d = torch.sigmoid((low - 0.5) * 6)
            v = torch.sigmoid((torch.log(high) + 3.0) * 1.5)
            return torch.stack([a, d, v], 1)

    return TinyTeacher().eval()


def tiny_teacher_onnx(path: Path) -> Path:
    """Export the tiny teacher as an ONNX teacher (input ``waveform``, output ``adv``)."""
    from .export.onnx import export
    from .recipe import load_recipe
    from .runtime.engine import InputSpec

    export(_teacher_module(), path, recipe=load_recipe("rpi"), spec=InputSpec(window_samples=SAMPLING_RATE))
    return path


def tiny_student(path: Path, corpus_csv: Path, *, seed: int = 0, ridge: float = 1e-1, **config: int) -> Path:
    """A Wav2Small fitted to the tiny teacher in closed form, in seconds, and saved like any student.

    Random conv weights, batch-norm statistics measured on the corpus, then a ridge-regression A/D/V head
    on the 338-wide pooled feature: a small but real student whose output tracks the teacher. ``config``
    overrides the published layout's settings (e.g. ``shape_stats=1``: the head then reads the speech
    statistics too); the head stays linear, so ``head_hidden`` is refused.
    """
    import torch

    if config.get("head_hidden"):
        raise ValueError("tiny_student fits a linear head; build a hidden-layer twin with with_relu_head")

    from . import models
    from .audio import list_audio, load

    torch.manual_seed(seed)
    x = torch.from_numpy(np.stack([load(it.path) for it in list_audio(corpus_csv)]))
    model = models.create_model("wav2small", **config)
    with torch.no_grad():
        y = _teacher_module()(x)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                m.momentum = None  # cumulative average over the calibration pass
        model.train()
        model.vgg7(x)
        model.eval()
        feats = model.vgg7(x).double()  # (N, 338), or (N, 338 + 104) with shape_stats
        mean = feats.mean(0)
        centred = feats - mean
        gram = centred.T @ centred + ridge * len(x) * torch.eye(feats.shape[1], dtype=torch.float64)
        w = torch.linalg.solve(gram, centred.T @ (y.double() - y.double().mean(0)))  # (338, 3)
        model.adv.weight.copy_(w.T.float())
        model.adv.bias.copy_((y.double().mean(0) - mean @ w).float())
    models.save(model, path, extra={"made_by": "edgeser.testing.tiny_student", "ridge": ridge})
    return path


def _head_twin(model: Any, **head: int) -> Any:
    """A Wav2Small of ``model``'s config with ``head`` settings, sharing its conv body's weights (eval mode)."""
    from . import models

    twin = models.create_model(model.arch, **{**model.config(), **head}).eval()
    twin.vgg7.load_state_dict(model.vgg7.state_dict())
    return twin


def with_relu_head(model: Any) -> Any:
    """The same Wav2Small function with a hidden ReLU head (``head_hidden`` 6): ``relu(z) - relu(-z)`` is ``z``.

    For testing exporters on the ``head_hidden`` layout with a student whose outputs are known to be sound.
    """
    import torch

    twin = _head_twin(model, head_hidden=6)
    eye = torch.eye(3)
    with torch.no_grad():
        twin.mlp.weight.copy_(torch.cat([model.adv.weight, -model.adv.weight]))
        twin.mlp.bias.copy_(torch.cat([model.adv.bias, -model.adv.bias]))
        twin.adv.weight.copy_(torch.cat([eye, -eye], 1))
        twin.adv.bias.zero_()
    return twin


def with_softmax_head(model: Any) -> Any:
    """A twin with a softmax head (``head_hidden`` 6, ``head_softmax`` 1) that follows the linear head.

    The hidden logits are ``+z`` and ``-z`` for the linear outputs ``z``, and output d is the weight of ``+z_d``
    minus that of ``-z_d`` (times 3), plus the linear head's bias: an increasing function of ``z_d`` with about the
    same spread, so exporters of the ``head_softmax`` layout can be tested on a student with sound outputs.
    """
    import torch

    twin = _head_twin(model, head_hidden=6, head_softmax=1)
    eye = torch.eye(3)
    with torch.no_grad():
        centre = model.adv.bias.clone()
        twin.mlp.weight.copy_(torch.cat([model.adv.weight, -model.adv.weight]))
        twin.mlp.bias.copy_(torch.cat([model.adv.bias - centre, centre - model.adv.bias]))
        twin.adv.weight.copy_(3.0 * torch.cat([eye, -eye], 1))
        twin.adv.bias.copy_(centre)
    return twin


def tiny_bundle(folder: Path, *, model: bytes = b"not a real model", target: str = "rpi") -> Path:
    """A structurally complete bundle around ``model`` (for tests of verify and the runner's checks).

    The manifest is consistent (target and recipe, model hash, backend, a passed gate), so ``verify``
    passes until a test changes something. The model is not loadable unless ``model`` is a real one.
    """
    from .bundle import assemble, write_manifest
    from .runtime.integrity import sha256_file

    folder.mkdir(parents=True)
    assemble(folder, target=target)
    name = "model.tflite" if model[4:8] == b"TFL3" else "model.onnx"
    (folder / name).write_bytes(model)
    backend = "litert" if name.endswith(".tflite") else "onnx"
    write_manifest(folder, {
        "target": target,
        "recipe": {"target": target, "runtime": {"backend": backend, "threads": 1}},
        "model": {"file": name, "variant": "int8", "sha256": sha256_file(folder / name)},
        "runtime": {"backend": backend, "threads": 1},
        "input": {"sampling_rate": SAMPLING_RATE, "window_samples": SAMPLING_RATE},
        "drift": {"shipped_variant": "int8", "shipped_passed": True},
    })
    return folder
