"""Teachers published as transformers checkpoints, loaded from a local folder.

Nothing is fetched from a hub and no code shipped in the folder is run (no ``trust_remote_code``):
the network is rebuilt from transformers' own ``Wav2Vec2Model`` / ``WavLMModel`` and the weights are
loaded into it strictly (:mod:`.hf_folder`). The layout is recognised from the weight names:

``audeering-w2v2-dim``
    audEERING's wav2vec2 A/D/V model (:mod:`.w2v2`).

``odyssey-wavlm-dim``
    The Odyssey 2024 challenge's WavLM baseline (:mod:`.wavlm`).

Outputs are reordered to arousal, dominance, valence using ``id2label`` when ``config.json`` names
the outputs; both models publish that order.

A teacher runs on a :class:`~edgeser.devices.Placement` (the CPU by default; a CUDA device with optional
bf16/fp16 autocast). It is padding-aware where the layout supports an attention mask (wav2vec2 and WavLM
with a layer-normalised feature encoder, as both published models are): given the valid length of each
clip in a zero-padded batch, a padded clip gets the label it gets alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import cast

import numpy as np
import torch

from ..devices import Placement, autocast
from ..errors import InputError
from ..fileio import sha256_files
from ..runtime.spec import DIMENSIONS, SAMPLING_RATE
from . import w2v2, wavlm
from .base import check_output
from .hf_folder import load_strict, output_order, read_config, read_state, transformers_module, weights_path

__all__ = ["HFTeacher", "load", "LAYOUTS"]

MAX_BATCH = 8
"""Clips per forward pass on the CPU; a larger batch is run in slices of this size to bound memory (on CUDA
the caller's batch runs whole: its size is the caller's --batch-size)."""

_LAYOUTS: dict[str, ModuleType] = {w2v2.LAYOUT: w2v2, wavlm.LAYOUT: wavlm}
LAYOUTS = tuple(_LAYOUTS)
"""Names of the supported layouts."""


def _detect_layout(keys: Iterable[str], path: Path) -> ModuleType:
    keys = set(keys)
    for layout in _LAYOUTS.values():
        if layout.matches(keys):
            return layout
    sample = ", ".join(sorted(keys)[:3])
    raise InputError(
        "not a supported transformers teacher: expected audEERING's wav2vec2 A/D/V model "
        "(wav2vec2.*, classifier.*) or the Odyssey WavLM baseline (ssl_model.*, pool_model.*); "
        f"found {sample}",
        path=path,
    )


class HFTeacher:
    """A transformers A/D/V checkpoint used as a teacher (batched, no gradients, on its placement)."""

    sample_rate = SAMPLING_RATE

    def __init__(self, path: str | Path, *, threads: int = 1, placement: Placement | None = None) -> None:
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        folder = Path(path)
        if not folder.is_dir():
            raise InputError("teacher folder not found" if not folder.exists() else "not a folder",
                             path=folder)
        config = read_config(folder)
        weights = weights_path(folder)
        transformers_module()  # fail on a missing extra before reading a large file
        state = read_state(weights)
        kind = _detect_layout(state, weights)
        module = kind.build(config, state, weights)
        load_strict(module, state, kind.LAYOUT, weights)
        del state
        self.placement = placement or Placement("cpu")
        self.order = output_order(config, int(module.outputs), folder / "config.json")
        self.module = module.eval().to(self.placement.torch_device())
        self.layout: str = kind.LAYOUT
        self.path = folder
        self.min_samples = int(module.min_samples)
        self.padding_aware = bool(module.padding_aware)
        """True when a padded clip, given its length, is labelled as if alone (the layout takes a mask)."""
        self._normalise = kind.normaliser(config)
        self.name = f"{self.layout}:{folder.name}"
        self.identity = f"hf-{self.layout}-{sha256_files([weights, folder / 'config.json'])[:16]}"
        # torch's intra-op pool is process-wide: the last teacher created sets it.
        torch.set_num_threads(threads)

    def __call__(self, batch: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """float32 (N, T) at 16 kHz -> float32 (N, 3): arousal, dominance, valence.

        Args:
            batch: clips, zero-padded to one length.
            lengths: valid samples of each clip (N,); None when no clip is padded. A clip shorter than the
                feature encoder's window counts as that long (its zeros are then part of it).

        Raises:
            ValueError: the batch is not 2-D, its clips are shorter than the feature encoder's window, or
                ``lengths`` does not fit it.
        """
        x = np.asarray(batch, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"{self.path}: expected a (N, T) batch of waveforms, got shape {x.shape}")
        if x.shape[1] < self.min_samples:
            raise ValueError(f"{self.path}: clips of {x.shape[1]} samples are too short "
                             f"(at least {self.min_samples}, {self.min_samples / SAMPLING_RATE * 1000:.0f} ms)")
        valid = self._lengths(lengths, x.shape)
        x = self._normalise(x, valid).astype(np.float32, copy=False)
        step = len(x) if self.placement.is_cuda else MAX_BATCH
        outs = []
        with torch.no_grad(), autocast(self.placement):
            for start in range(0, len(x), max(step, 1)):
                part = None if valid is None else valid[start : start + step]
                outs.append(self._forward(x[start : start + step], part))
        out = np.concatenate(outs) if outs else np.zeros((0, len(DIMENSIONS)), np.float32)
        if self.order is not None:
            out = out[:, self.order]
        return check_output(out, len(x), str(self.path))

    def _lengths(self, lengths: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
        """Valid lengths clamped to [min_samples, T]; None when nothing is padded or the layout takes no mask."""
        if lengths is None or not self.padding_aware:
            return None
        valid = np.asarray(lengths, dtype=np.int64).reshape(-1)
        if valid.shape != (shape[0],) or (valid < 1).any():
            raise ValueError(f"{self.path}: lengths must be one positive count per clip, got {valid.shape}")
        valid = np.clip(valid, self.min_samples, shape[1])
        return None if (valid == shape[1]).all() else valid

    def _forward(self, x: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
        device = self.placement.torch_device()
        chunk = torch.from_numpy(np.ascontiguousarray(x)).to(device)  # (B, T)
        if lengths is None or (lengths == x.shape[1]).all():
            return cast(np.ndarray, self.module(chunk).float().cpu().numpy())
        mask = torch.arange(x.shape[1])[None, :] < torch.from_numpy(lengths)[:, None]  # (B, T)
        return cast(np.ndarray, self.module(chunk, mask.long().to(device)).float().cpu().numpy())


def load(path: str | Path, *, threads: int = 1, placement: Placement | None = None) -> HFTeacher:
    """Load a transformers A/D/V teacher from a local folder (``config.json`` + weights).

    ``threads`` sets torch's (process-wide) intra-op thread count when the teacher is created; ``placement``
    (default: the CPU, fp32) is where it runs.

    Raises:
        InputError: a file is missing, unreadable or corrupt, or the folder is not a supported layout.
        ImportError: transformers is not installed (``pip install 'edgeser[teachers]'``).
    """
    return HFTeacher(path, threads=threads, placement=placement)
