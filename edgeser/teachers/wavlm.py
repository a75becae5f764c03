"""The Odyssey WavLM baseline layout (``odyssey-wavlm-dim``), loaded through :mod:`.hf`.

The Odyssey 2024 challenge baseline ``3loi/SER-Odyssey-Baseline-WavLM-Multi-Attributes``:
``ssl_model.*`` (a WavLM-Large ``WavLMModel``), ``pool_model.*`` (attentive statistics pooling),
``ser_model.*`` (Linear -> LayerNorm -> ReLU blocks, then a Linear). The waveform is normalised
with the corpus statistics ``config.json`` carries: ``(x - mean) / (std + 1e-6)``.

Padded clips (a batch with an attention mask, as the baseline passes): the padding is zero, the backbone
gets the mask, and the pooling runs over each clip's own frames, so a padded clip gets the label it gets
alone.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from .hf_folder import NO_MASKING, min_samples, padding_aware, transformers_module

__all__ = ["LAYOUT", "WAVLM_LARGE", "OdysseySER", "matches", "build", "normaliser"]

LAYOUT = "odyssey-wavlm-dim"
NORM_EPS = 1e-6  # the Odyssey baseline's WavSet: (x - mean) / (std + 1e-6)
FRAME_SHIFT = 320  # samples; the baseline's pooling assumes 20 ms frames at 16 kHz
SSL_TYPE = "microsoft/wavlm-large"

# microsoft/wavlm-large, the backbone the Odyssey baseline builds from `ssl_type`. Values that the
# weights' shapes also carry are overridden from the weights (see _wavlm_config); the rest cannot be
# read from a state dict and are taken as published.
WAVLM_LARGE: dict[str, Any] = {
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
    "feat_extract_norm": "layer",
    "feat_extract_activation": "gelu",
    "conv_dim": [512, 512, 512, 512, 512, 512, 512],
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_bias": False,
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
    "num_buckets": 320,
    "max_bucket_distance": 800,
    "do_stable_layer_norm": True,
}


class _AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling as in the Odyssey baseline: weighted mean and std, concatenated."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.sap_linear = nn.Linear(hidden, hidden)
        self.attention = nn.Parameter(torch.zeros(hidden, 1))

    def forward(self, h: torch.Tensor, samples: int, frames: torch.Tensor | None = None) -> torch.Tensor:
        """Pool (N, F, H) hidden states; ``frames`` (N,) counts each clip's valid frames (None: all whole)."""
        # The baseline derives the frame count from the waveform length.
        h = h[:, : (samples - 1) // FRAME_SHIFT + 1]
        scores = torch.tanh(self.sap_linear(h)) @ self.attention  # (N, F, 1)
        if frames is not None:
            valid = torch.arange(h.shape[1], device=h.device)[None, :] < frames[:, None]  # (N, F)
            scores = scores.masked_fill(~valid[:, :, None], float("-inf"))
        w = torch.softmax(scores, dim=1)  # (N, F, 1)
        mu = (h * w).sum(dim=1)  # (N, H)
        sd = torch.sqrt(((h * h) * w).sum(dim=1).sub(mu * mu).clamp(min=1e-5))  # (N, H)
        return torch.cat((mu, sd), dim=1)  # (N, 2H)


class _EmotionRegression(nn.Module):
    """The Odyssey baseline's head: (Linear, LayerNorm, ReLU) blocks, then a Linear (no dropout)."""

    def __init__(self, inputs: int, hidden: int, blocks: int, outputs: int) -> None:
        super().__init__()
        dims = [inputs] + [hidden] * blocks
        self.fc = nn.ModuleList(
            nn.Sequential(nn.Linear(i, o), nn.LayerNorm(o), nn.ReLU())
            for i, o in zip(dims[:-1], dims[1:], strict=True)
        )
        self.out = nn.Sequential(nn.Linear(hidden, outputs))

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (N, inputs)
        for block in self.fc:
            h = block(h)
        return cast(torch.Tensor, self.out(h))  # (N, 3)


class OdysseySER(nn.Module):
    """Odyssey baseline: WavLM -> attentive statistics pooling -> regression head."""

    def __init__(self, backbone: nn.Module, hidden: int, head: int, blocks: int, outputs: int) -> None:
        super().__init__()
        self.outputs = outputs
        config: Any = backbone.config  # a transformers WavLMConfig
        self.min_samples = min_samples(config)
        self.padding_aware = padding_aware(config)
        self.ssl_model: Any = backbone  # a transformers WavLMModel (its methods are not nn.Module's)
        self.pool_model = _AttentiveStatsPool(hidden)
        self.ser_model = _EmotionRegression(2 * hidden, head, blocks, outputs)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # (N, T), (N, T)
        # The baseline passes an all-ones attention mask for whole clips; no mask is the same computation
        # and avoids torch's warning about mixing a boolean padding mask with the float position bias.
        if mask is None:
            h = self.ssl_model(x).last_hidden_state  # (N, F, H)
            return cast(torch.Tensor, self.ser_model(self.pool_model(h, x.shape[1])))  # (N, 3)
        with warnings.catch_warnings():  # that warning, for a padded batch: the mask is what the baseline passes
            warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
            h = self.ssl_model(x, attention_mask=mask).last_hidden_state  # (N, F, H)
        lengths = mask.sum(dim=1)  # (N,)
        ours = self.ssl_model._get_feat_extract_output_lengths(lengths)  # frames a clip alone has
        frames = torch.minimum(ours, torch.div(lengths - 1, FRAME_SHIFT, rounding_mode="floor") + 1)
        return cast(torch.Tensor, self.ser_model(self.pool_model(h, x.shape[1], frames)))  # (N, 3)


def matches(keys: set[str]) -> bool:
    """True when the weight names are this layout's."""
    return "pool_model.attention" in keys and any(k.startswith("ssl_model.") for k in keys)


def _wavlm_config(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """WavLM-Large's configuration with the sizes read from the weights (so smaller copies load too)."""
    prefix = "ssl_model."
    conv_prefix = f"{prefix}feature_extractor.conv_layers."
    convs = sorted({int(k.split(".")[3]) for k in state if k.startswith(conv_prefix)})
    layers = {int(k.split(".")[3]) for k in state if k.startswith(f"{prefix}encoder.layers.")}
    first = f"{prefix}encoder.layers.0."
    conv_w = [state[f"{conv_prefix}{i}.conv.weight"] for i in convs]
    pos_v = next(v for k, v in state.items() if k.startswith(prefix + "encoder.pos_conv_embed.conv.")
                 and k.endswith(("weight_v", "original1")))
    hidden = state[prefix + "feature_projection.projection.weight"].shape[0]
    return {
        **WAVLM_LARGE,
        **NO_MASKING,
        "hidden_size": hidden,
        "num_hidden_layers": len(layers),
        "num_attention_heads": state[first + "attention.gru_rel_pos_const"].shape[1],
        "intermediate_size": state[first + "feed_forward.intermediate_dense.weight"].shape[0],
        "num_buckets": state[first + "attention.rel_attn_embed.weight"].shape[0],
        "conv_dim": [w.shape[0] for w in conv_w],
        "conv_kernel": [w.shape[2] for w in conv_w],
        "conv_bias": f"{conv_prefix}0.conv.bias" in state,
        "num_conv_pos_embeddings": pos_v.shape[2],
        "num_conv_pos_embedding_groups": hidden // pos_v.shape[1],
    }


def build(config: dict[str, Any], state: dict[str, torch.Tensor], path: Path) -> OdysseySER:
    """The untrained network that ``state`` (read from ``path``) fits; sizes come from the weights.

    Raises:
        InputError: ``config.json`` lacks the normalisation or names another backbone, or the weights are
            not WavLM-Large-shaped.
    """
    tf = transformers_module()
    cfg_path = path.parent / "config.json"
    ssl_type = config.get("ssl_type", SSL_TYPE)
    if ssl_type != SSL_TYPE:
        raise InputError(f"ssl_type {ssl_type!r} is not supported (only {SSL_TYPE})", path=cfg_path)
    for key in ("mean", "std"):
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InputError(f"config.json lacks the waveform normalisation '{key}' (a number)",
                             path=cfg_path)
    if config["std"] <= 0:
        raise InputError(f"config.json has std {config['std']}, expected a positive number", path=cfg_path)
    try:
        wavlm = _wavlm_config(state)
    except (KeyError, StopIteration, IndexError, ValueError):
        raise InputError("ssl_model.* is not a WavLM-Large-shaped backbone", path=path) from None
    if len(wavlm["conv_dim"]) != len(WAVLM_LARGE["conv_stride"]):
        raise InputError(f"ssl_model has {len(wavlm['conv_dim'])} convolutions, WavLM-Large has 7", path=path)
    backbone = tf.WavLMModel(tf.WavLMConfig(**wavlm))
    blocks = len({k.split(".")[2] for k in state if k.startswith("ser_model.fc.")})
    head = state["ser_model.out.0.weight"] if "ser_model.out.0.weight" in state else None
    if head is None or blocks < 1:
        raise InputError("ser_model.* has no regression blocks or no output layer", path=path)
    return OdysseySER(backbone, wavlm["hidden_size"], head.shape[1], blocks, head.shape[0])


def normaliser(config: dict[str, Any]) -> Callable[[np.ndarray, np.ndarray | None], np.ndarray]:
    """``(x - mean) / (std + 1e-6)`` with the corpus statistics from ``config.json`` (checked by :func:`build`);
    with ``lengths`` (valid samples per clip), the padding is set to zero."""
    mean, std = float(config["mean"]), float(config["std"])

    def scale(x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:  # (N, T), (N,)
        out = (x - np.float32(mean)) / np.float32(std + NORM_EPS)
        if lengths is not None:
            out[np.arange(x.shape[1])[None, :] >= np.asarray(lengths)[:, None]] = 0
        return out

    return scale
