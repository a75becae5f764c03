"""audEERING's wav2vec2 A/D/V layout (``audeering-w2v2-dim``), loaded through :mod:`.hf`.

audEERING's ``wav2vec2-large-robust-12-ft-emotion-msp-dim``: ``wav2vec2.*`` (a ``Wav2Vec2Model``
described by ``config.json``), hidden states averaged over time, then ``classifier.dense`` -> tanh
-> ``classifier.out_proj``. Each clip is first normalised to zero mean and unit variance, as the
model's ``Wav2Vec2FeatureExtractor`` (``do_normalize``) does.

Padded clips (a batch with an attention mask): the statistics are those of the valid samples, the padding
is zero, the backbone gets the mask and the mean runs over the valid frames only, so a padded clip gets
the label it gets alone. Only a layer-normalised feature encoder (``feat_extract_norm == "layer"``, as
audEERING's model has) takes a mask; with group normalisation the padding is part of the clip.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from .hf_folder import NO_MASKING, min_samples, padding_aware, transformers_module

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
        return cast(torch.Tensor, self.out_proj(torch.tanh(self.dense(h))))  # (N, 3)


class MeanRegression(nn.Module):
    """audEERING: wav2vec2 -> mean over time -> regression head (attribute names as published)."""

    def __init__(self, backbone: nn.Module, hidden: int, outputs: int) -> None:
        super().__init__()
        self.outputs = outputs
        config: Any = backbone.config  # a transformers Wav2Vec2Config
        self.min_samples = min_samples(config)
        self.padding_aware = padding_aware(config)
        self.wav2vec2: Any = backbone  # a transformers Wav2Vec2Model (its methods are not nn.Module's)
        self.classifier = _RegressionHead(hidden, outputs)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # (N, T), (N, T)
        if mask is None:
            h = self.wav2vec2(x).last_hidden_state  # (N, F, H)
            return cast(torch.Tensor, self.classifier(h.mean(dim=1)))  # (N, 3)
        h = self.wav2vec2(x, attention_mask=mask).last_hidden_state  # (N, F, H)
        frames = self.wav2vec2._get_feature_vector_attention_mask(h.shape[1], mask)  # (N, F)
        weights = frames.to(h.dtype)[:, :, None]  # (N, F, 1)
        return cast(torch.Tensor, self.classifier((h * weights).sum(dim=1) / weights.sum(dim=1)))  # (N, 3)


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


def normaliser(config: dict[str, Any]) -> Callable[[np.ndarray, np.ndarray | None], np.ndarray]:
    """Zero mean and unit variance per clip, as the model's feature extractor does.

    With ``lengths`` (valid samples per clip), over each clip's valid samples, and its padding set to zero
    (the extractor's ``padding_value``).
    """

    def per_clip(x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:  # (N, T), (N,)
        if lengths is None:
            scale = np.sqrt(x.var(axis=1, keepdims=True) + NORM_EPS)
            return cast(np.ndarray, (x - x.mean(axis=1, keepdims=True)) / scale)
        out = np.zeros_like(x)
        for i, n in enumerate(lengths):
            clip = x[i, :n]
            out[i, :n] = (clip - clip.mean()) / np.sqrt(clip.var() + NORM_EPS)
        return out

    return per_clip
