"""Reading a local transformers checkpoint folder: ``config.json``, the weights, and loading them strictly.

Nothing is fetched from a hub and no code shipped in the folder is run (no ``trust_remote_code``).
Weights come from ``model.safetensors`` (preferred) or ``pytorch_model.bin``, the latter read with
``torch.load(weights_only=True)`` only, which refuses to unpickle anything but tensors. The layouts
(:mod:`.w2v2`, :mod:`.wavlm`) build their networks from transformers' own classes and use these helpers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import InputError
from ..runtime.spec import DIMENSIONS
from ..userfiles import load_safetensors, load_torch_state, read_json
from .base import label_order

__all__ = ["WEIGHT_FILES", "NO_MASKING", "transformers_module", "read_config", "weights_path", "read_state",
           "min_samples", "load_strict", "output_order"]

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Inference only: no SpecAugment, so the backbone has no training-only `masked_spec_embed`.
NO_MASKING = {"mask_time_prob": 0.0, "mask_feature_prob": 0.0, "apply_spec_augment": False, "layerdrop": 0.0}
IGNORED_KEY_SUFFIXES = ("masked_spec_embed",)
# torch's old weight_norm names and its parametrization names, for the positional convolution.
LEGACY_NAMES = {
    "weight_g": "parametrizations.weight.original0",
    "weight_v": "parametrizations.weight.original1",
}


def transformers_module() -> Any:
    """The ``transformers`` package.

    Raises:
        ImportError: it is not installed (names the pip extra).
    """
    try:
        import transformers
    except ImportError as exc:
        raise ImportError(
            "transformers teachers need the transformers package: pip install 'edgeser[teachers]'"
        ) from exc
    return transformers


def read_config(folder: Path) -> dict[str, Any]:
    """The folder's ``config.json`` as a mapping (InputError when missing or not a JSON object)."""
    return read_json(folder / "config.json", what="config.json")


def weights_path(folder: Path) -> Path:
    """The folder's weights file, safetensors first (InputError when there is none)."""
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise InputError(f"no weights found: expected {' or '.join(WEIGHT_FILES)}", path=folder)


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """A flat state dict of tensors from a safetensors or (weights-only) torch file."""
    if path.suffix == ".safetensors":
        state = load_safetensors(path, what="weights file")
    else:
        state = load_torch_state(path, what="weights file")
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError("weights file is not a flat state dict of tensors", path=path)
    return state


def min_samples(config: Any) -> int:
    """Receptive field of a transformers convolutional feature encoder: the shortest clip it accepts."""
    field, hop = 1, 1
    for kernel, stride in zip(config.conv_kernel, config.conv_stride, strict=True):
        field += (kernel - 1) * hop
        hop *= stride
    return field


def padding_aware(config: Any) -> bool:
    """Whether a transformers feature encoder can take an attention mask: only a layer-normalised one
    (``feat_extract_norm == "layer"``); with group normalisation the padding is part of the clip."""
    return bool(config.feat_extract_norm == "layer")


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


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], layout: str, path: Path) -> None:
    """Load ``state`` into ``module``; every key present with its shape, or one InputError listing what is not."""
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


def output_order(config: dict[str, Any], outputs: int, path: Path) -> list[int] | None:
    """Indices that put the model's outputs in A, D, V order (from ``id2label``); None when they are already."""
    if outputs != len(DIMENSIONS):
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
    order = label_order(labels, what="id2label", path=path)
    return None if order == list(range(len(DIMENSIONS))) else order
