"""audEERING's wav2vec2 A/D/V layout (``audeering-w2v2-dim``), loaded through :mod:`.hf`.

audEERING's ``wav2vec2-large-robust-12-ft-emotion-msp-dim``: ``wav2vec2.*`` (a ``Wav2Vec2Model``
described by ``config.json``), hidden states averaged over time, then ``classifier.dense`` -> tanh
-> ``classifier.out_proj``. Each clip is first normalised to zero mean and unit variance, as the
model's ``Wav2Vec2FeatureExtractor`` (``do_normalize``) does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from .hf_folder import NO_MASKING, min_samples, transformers_module

__all__ = ["LAYOUT", "MeanRegression", "matches", "build", "normaliser"]

LAYOUT = "audeering-w2v2-dim"
NORM_EPS = 1e-7  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm


class _RegressionHead(nn.Module):
    """audEERING's head: dense -> tanh -> out_proj (dropout omitted: inference only)."""

    def __init__(self, hidden: int, outputs: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, outputs)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (N, H)
        return self.out_proj(torch.tanh(self.dense(h)))  # (N, 3)


class MeanRegression(nn.Module):
    """audEERING: wav2vec2 -> mean over time -> regression head (attribute names as published)."""

    def __init__(self, backbone: nn.Module, hidden: int, outputs: int) -> None:
        super().__init__()
        self.outputs = outputs
        self.min_samples = min_samples(backbone.config)
        self.wav2vec2 = backbone
        self.classifier = _RegressionHead(hidden, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, T)
        h = self.wav2vec2(x).last_hidden_state  # (N, F, H)
        return self.classifier(h.mean(dim=1))  # (N, 3)


def matches(keys: set[str]) -> bool:
    """True when the weight names are this layout's."""
    return "classifier.out_proj.weight" in keys and any(k.startswith("wav2vec2.") for k in keys)


def build(config: dict[str, Any], state: dict[str, torch.Tensor], path: Path) -> MeanRegression:
    """The untrained network that ``state`` (read from ``path``) fits, described by ``config.json``.

    Raises:
        InputError: ``config.json`` does not describe a wav2vec2 model.
    """
    tf = transformers_module()
    if config.get("model_type") != "wav2vec2":
        raise InputError(f"wav2vec2 weights but config.json has model_type {config.get('model_type')!r}",
                         path=path.parent / "config.json")
    cfg = tf.Wav2Vec2Config.from_dict({**config, **NO_MASKING})
    backbone = tf.Wav2Vec2Model(cfg)
    return MeanRegression(backbone, cfg.hidden_size, state["classifier.out_proj.weight"].shape[0])


def normaliser(config: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """Zero mean and unit variance per clip, as the model's feature extractor does."""

    def per_clip(x: np.ndarray) -> np.ndarray:  # (N, T)
        return (x - x.mean(axis=1, keepdims=True)) / np.sqrt(x.var(axis=1, keepdims=True) + NORM_EPS)

    return per_clip
