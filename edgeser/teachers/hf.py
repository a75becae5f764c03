"""Teachers published as transformers checkpoints, loaded from a local folder.

Nothing is fetched from a hub and no code shipped in the folder is run (no ``trust_remote_code``):
the network is rebuilt here from transformers' own ``Wav2Vec2Model`` / ``WavLMModel`` and the weights
are loaded into it strictly. Two layouts are recognised from ``config.json`` and the weight names:

``audeering-w2v2-dim``
    audEERING's ``wav2vec2-large-robust-12-ft-emotion-msp-dim``: ``wav2vec2.*`` (a ``Wav2Vec2Model``
    described by ``config.json``), hidden states averaged over time, then ``classifier.dense`` -> tanh
    -> ``classifier.out_proj``. Each clip is first normalised to zero mean and unit variance, as the
    model's ``Wav2Vec2FeatureExtractor`` (``do_normalize``) does.

``odyssey-wavlm-dim``
    The Odyssey 2024 challenge baseline ``3loi/SER-Odyssey-Baseline-WavLM-Multi-Attributes``:
    ``ssl_model.*`` (a WavLM-Large ``WavLMModel``), ``pool_model.*`` (attentive statistics pooling),
    ``ser_model.*`` (Linear -> LayerNorm -> ReLU blocks, then a Linear). The waveform is normalised
    with the corpus statistics ``config.json`` carries: ``(x - mean) / (std + 1e-6)``.

Outputs are reordered to arousal, dominance, valence using ``id2label`` when ``config.json`` names
the outputs; both models publish that order.

Weights come from ``model.safetensors`` (preferred) or ``pytorch_model.bin``, the latter read with
``torch.load(weights_only=True)`` only, which refuses to unpickle anything but tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeser.errors import InputError
from edgeser.userfiles import load_safetensors, load_torch_state, read_json

from .base import check_output, file_digest

__all__ = ["HFTeacher", "load", "LAYOUTS"]

ORDER = ("arousal", "dominance", "valence")
SAMPLE_RATE = 16_000
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
MAX_BATCH = 8
"""Clips per forward pass; a larger batch is run in slices of this size to bound memory."""

AUDEERING = "audeering-w2v2-dim"
ODYSSEY = "odyssey-wavlm-dim"
LAYOUTS = (AUDEERING, ODYSSEY)

W2V2_NORM_EPS = 1e-7  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm
ODYSSEY_NORM_EPS = 1e-6  # the Odyssey baseline's WavSet: (x - mean) / (std + 1e-6)
ODYSSEY_FRAME_SHIFT = 320  # samples; the baseline's pooling assumes 20 ms frames at 16 kHz
ODYSSEY_SSL_TYPE = "microsoft/wavlm-large"

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
# Inference only: no SpecAugment, so the backbone has no training-only `masked_spec_embed`.
NO_MASKING = {"mask_time_prob": 0.0, "mask_feature_prob": 0.0, "apply_spec_augment": False, "layerdrop": 0.0}
IGNORED_KEY_SUFFIXES = ("masked_spec_embed",)
# torch's old weight_norm names and its parametrization names, for the positional convolution.
LEGACY_NAMES = {
    "weight_g": "parametrizations.weight.original0",
    "weight_v": "parametrizations.weight.original1",
}


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:
        raise ImportError(
            "transformers teachers need the transformers package: pip install 'edgeser[teachers]'"
        ) from exc
    return transformers


# --------------------------------------------------------------------------- modules


def _min_samples(config: Any) -> int:
    """Receptive field of the convolutional feature encoder: the shortest clip it accepts."""
    field, hop = 1, 1
    for kernel, stride in zip(config.conv_kernel, config.conv_stride, strict=True):
        field += (kernel - 1) * hop
        hop *= stride
    return field


class _RegressionHead(nn.Module):
    """audEERING's head: dense -> tanh -> out_proj (dropout omitted: inference only)."""

    def __init__(self, hidden: int, outputs: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, outputs)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (N, H)
        return self.out_proj(torch.tanh(self.dense(h)))  # (N, 3)


class _MeanRegression(nn.Module):
    """audEERING: wav2vec2 -> mean over time -> regression head (attribute names as published)."""

    def __init__(self, backbone: nn.Module, hidden: int, outputs: int) -> None:
        super().__init__()
        self.outputs = outputs
        self.min_samples = _min_samples(backbone.config)
        self.wav2vec2 = backbone
        self.classifier = _RegressionHead(hidden, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, T)
        h = self.wav2vec2(x).last_hidden_state  # (N, F, H)
        return self.classifier(h.mean(dim=1))  # (N, 3)


class _AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling as in the Odyssey baseline: weighted mean and std, concatenated."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.sap_linear = nn.Linear(hidden, hidden)
        self.attention = nn.Parameter(torch.zeros(hidden, 1))

    def forward(self, h: torch.Tensor, samples: int) -> torch.Tensor:  # (N, F, H)
        # The baseline derives the frame count from the waveform length; every clip here is whole.
        h = h[:, : (samples - 1) // ODYSSEY_FRAME_SHIFT + 1]
        w = torch.softmax(torch.tanh(self.sap_linear(h)) @ self.attention, dim=1)  # (N, F, 1)
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
        return self.out(h)  # (N, 3)


class _OdysseySER(nn.Module):
    """Odyssey baseline: WavLM -> attentive statistics pooling -> regression head."""

    def __init__(self, backbone: nn.Module, hidden: int, head: int, blocks: int, outputs: int) -> None:
        super().__init__()
        self.outputs = outputs
        self.min_samples = _min_samples(backbone.config)
        self.ssl_model = backbone
        self.pool_model = _AttentiveStatsPool(hidden)
        self.ser_model = _EmotionRegression(2 * hidden, head, blocks, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, T)
        # The baseline passes an all-ones attention mask for whole clips; no mask is the same computation
        # and avoids torch's warning about mixing a boolean padding mask with the float position bias.
        h = self.ssl_model(x).last_hidden_state  # (N, F, H)
        return self.ser_model(self.pool_model(h, x.shape[1]))  # (N, 3)


# --------------------------------------------------------------------------- files


def _read_config(folder: Path) -> dict[str, Any]:
    return read_json(folder / "config.json", what="config.json")


def _weights_path(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise InputError(f"no weights found: expected {' or '.join(WEIGHT_FILES)}", path=folder)


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        state = load_safetensors(path, what="weights file")
    else:
        state = load_torch_state(path, what="weights file")
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError("weights file is not a flat state dict of tensors", path=path)
    return state


# --------------------------------------------------------------------------- checks


def _detect_layout(keys: Iterable[str], path: Path) -> str:
    keys = set(keys)
    if "classifier.out_proj.weight" in keys and any(k.startswith("wav2vec2.") for k in keys):
        return AUDEERING
    if "pool_model.attention" in keys and any(k.startswith("ssl_model.") for k in keys):
        return ODYSSEY
    sample = ", ".join(sorted(keys)[:3])
    raise InputError(
        "not a supported transformers teacher: expected audEERING's wav2vec2 A/D/V model "
        "(wav2vec2.*, classifier.*) or the Odyssey WavLM baseline (ssl_model.*, pool_model.*); "
        f"found {sample}",
        path=path,
    )


def _output_order(config: dict[str, Any], outputs: int, path: Path) -> list[int] | None:
    """Indices that put the model's outputs in A, D, V order; None when they are already."""
    if outputs != len(ORDER):
        raise InputError(f"the head has {outputs} outputs, expected 3 (arousal, dominance, valence)",
                         path=path)
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        return None
    try:
        labels = [str(id2label[k]).lower() for k in sorted(id2label, key=int)]
    except (TypeError, ValueError):
        raise InputError(f"id2label has non-integer keys: {sorted(id2label)}", path=path) from None
    if all(lab.startswith("label_") for lab in labels):  # transformers' placeholder names
        return None
    if sorted(labels) != sorted(ORDER):
        raise InputError(f"id2label names {labels}, expected {list(ORDER)} in some order", path=path)
    order = [labels.index(d) for d in ORDER]
    return None if order == list(range(len(ORDER))) else order


def _match_legacy_names(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Rename weight_g/weight_v to parametrizations.weight.original0/1 (or back) to what the module has."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(IGNORED_KEY_SUFFIXES):
            continue
        if key not in expected:
            for old, new in LEGACY_NAMES.items():
                for a, b in ((old, new), (new, old)):
                    if key.endswith(a) and key[: -len(a)] + b in expected:
                        key = key[: -len(a)] + b
        out[key] = value
    return out


def _load_strict(module: nn.Module, state: dict[str, torch.Tensor], layout: str, path: Path) -> None:
    expected = module.state_dict()
    state = _match_legacy_names(state, set(expected))
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    problems = [
        f"{label} {len(keys)} key(s) ({', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''})"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape for", shapes))
        if keys
    ]
    if problems:
        raise InputError(f"weights do not match the {layout} layout: {'; '.join(problems)}", path=path)
    module.load_state_dict(state, strict=True)


# --------------------------------------------------------------------------- builders


def _build_audeering(config: dict[str, Any], state: dict[str, torch.Tensor], path: Path) -> _MeanRegression:
    tf = _transformers()
    if config.get("model_type") != "wav2vec2":
        raise InputError(f"wav2vec2 weights but config.json has model_type {config.get('model_type')!r}",
                         path=path.parent / "config.json")
    cfg = tf.Wav2Vec2Config.from_dict({**config, **NO_MASKING})
    backbone = tf.Wav2Vec2Model(cfg)
    return _MeanRegression(backbone, cfg.hidden_size, state["classifier.out_proj.weight"].shape[0])


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


def _build_odyssey(config: dict[str, Any], state: dict[str, torch.Tensor], path: Path) -> _OdysseySER:
    tf = _transformers()
    cfg_path = path.parent / "config.json"
    ssl_type = config.get("ssl_type", ODYSSEY_SSL_TYPE)
    if ssl_type != ODYSSEY_SSL_TYPE:
        raise InputError(f"ssl_type {ssl_type!r} is not supported (only {ODYSSEY_SSL_TYPE})", path=cfg_path)
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
    return _OdysseySER(backbone, wavlm["hidden_size"], head.shape[1], blocks, head.shape[0])


def _normaliser(layout: str, config: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    if layout == AUDEERING:

        def per_clip(x: np.ndarray) -> np.ndarray:  # zero mean, unit variance per clip
            return (x - x.mean(axis=1, keepdims=True)) / np.sqrt(x.var(axis=1, keepdims=True) + W2V2_NORM_EPS)

        return per_clip
    mean, std = float(config["mean"]), float(config["std"])
    return lambda x: (x - np.float32(mean)) / np.float32(std + ODYSSEY_NORM_EPS)


# --------------------------------------------------------------------------- teacher


class HFTeacher:
    """A transformers A/D/V checkpoint used as a teacher (CPU, float32, batched, no gradients)."""

    sample_rate = SAMPLE_RATE

    def __init__(self, path: str | Path, *, threads: int = 1) -> None:
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        folder = Path(path)
        if not folder.is_dir():
            raise InputError("teacher folder not found" if not folder.exists() else "not a folder",
                             path=folder)
        config = _read_config(folder)
        weights = _weights_path(folder)
        _transformers()  # fail on a missing extra before reading a large file
        state = _read_state(weights)
        layout = _detect_layout(state, weights)
        module: _MeanRegression | _OdysseySER
        if layout == AUDEERING:
            module = _build_audeering(config, state, weights)
        else:
            module = _build_odyssey(config, state, weights)
        _load_strict(module, state, layout, weights)
        self.order = _output_order(config, int(module.outputs), folder / "config.json")
        self.module = module.eval()
        self.layout = layout
        self.path = folder
        self.min_samples = int(module.min_samples)
        self._normalise = _normaliser(layout, config)
        self.name = f"{layout}:{folder.name}"
        self.identity = f"hf-{layout}-{file_digest(weights, folder / 'config.json')}"
        # torch's intra-op pool is process-wide: the last teacher created sets it.
        torch.set_num_threads(threads)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, T) at 16 kHz -> float32 (N, 3): arousal, dominance, valence.

        Raises:
            ValueError: the batch is not 2-D or its clips are shorter than the feature encoder's window.
        """
        x = np.asarray(batch, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"{self.path}: expected a (N, T) batch of waveforms, got shape {x.shape}")
        if x.shape[1] < self.min_samples:
            raise ValueError(f"{self.path}: clips of {x.shape[1]} samples are too short "
                             f"(at least {self.min_samples}, {self.min_samples / SAMPLE_RATE * 1000:.0f} ms)")
        x = self._normalise(x).astype(np.float32, copy=False)
        outs = []
        with torch.no_grad():
            for start in range(0, len(x), MAX_BATCH):
                chunk = torch.from_numpy(np.ascontiguousarray(x[start : start + MAX_BATCH]))
                outs.append(self.module(chunk).float().numpy())
        out = np.concatenate(outs) if outs else np.zeros((0, len(ORDER)), np.float32)
        if self.order is not None:
            out = out[:, self.order]
        return check_output(out, len(x), str(self.path))


def load(path: str | Path, *, threads: int = 1) -> HFTeacher:
    """Load a transformers A/D/V teacher from a local folder (``config.json`` + weights).

    ``threads`` sets torch's (process-wide) intra-op thread count when the teacher is created.

    Raises:
        InputError: a file is missing, unreadable or corrupt, or the folder is not a supported layout.
        ImportError: transformers is not installed (``pip install 'edgeser[teachers]'``).
    """
    return HFTeacher(path, threads=threads)

