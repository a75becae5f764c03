"""What a distillation run is told: :class:`DistillConfig`, checked at the boundary, and read back from a checkpoint."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..augment import AugmentConfig
from ..errors import InputError
from ..metrics import DIMENSIONS

__all__ = ["DistillConfig", "LOSSES", "config_of"]

LOSSES = ("ccc", "mse", "ccc+mse")
"""Loss choices: 1 - CCC averaged over A/D/V, mean squared error, or their sum."""


@dataclass
class DistillConfig:
    """How a student is distilled from teacher labels."""

    student: str = "wav2small"
    """Registered student name (see :func:`edgeser.models.list_models`)."""
    student_config: dict[str, Any] = field(default_factory=dict)
    """Hyper-parameter overrides for the student."""
    epochs: int = 20
    """Epochs to train (an epoch is a pass over the training windows, or ``windows_per_epoch`` of them)."""
    batch_size: int = 16
    """Windows per step."""
    lr: float = 3e-3
    """Peak AdamW learning rate (linear warm-up, then cosine decay to zero)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    loss: str = "ccc+mse"
    """``ccc``, ``mse`` or ``ccc+mse``."""
    loss_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Weights of arousal, dominance and valence in the loss (a weighted mean: only their ratios matter)."""
    ema: float = 0.0
    """Decay per step of an exponential moving average of the weights (0: off). When on, the average is
    what is validated and saved (best and last); the raw weights stay in the training state."""
    init: str | None = None
    """A student checkpoint (.safetensors) of the same layout to start from instead of a random init."""
    teacher: str | None = None
    """Label every augmented training window again with this teacher (see :mod:`edgeser.distill`); it must
    be the teacher that wrote the labels (``default``, a path, or several joined with ``+``)."""
    val_speakers: list[str] | None = None
    """Speakers held out for validation (default: about ``val_fraction`` of them, chosen by ``seed``)."""
    val_fraction: float = 0.2
    """Share of speakers (or of files, when speakers are unknown) held out when ``val_speakers`` is unset."""
    window_seconds: float | None = None
    """Training window in seconds (default: the longest labelled window)."""
    windows_per_epoch: int | None = None
    """Training windows drawn (without replacement) per epoch; default: all of them."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Waveform augmentation of the training windows (never of the validation windows)."""
    seed: int = 0
    """Seed of initialisation, order, split and augmentation."""
    threads: int = 1
    """torch intra-op threads."""

    def validate(self) -> None:
        """Raises InputError for an unknown loss, a number outside its range (:data:`edgeser.limits.DISTILL`)
        or a student that cannot be built.

        Called before any labels or audio are read, so a mistyped option fails at once.
        """
        from .. import models
        from ..limits import DISTILL, LOSS_WEIGHT, check

        check(self, DISTILL)
        if self.loss not in LOSSES:
            raise InputError(f"unknown loss '{self.loss}' (choose from {', '.join(LOSSES)})")
        if not 0 < self.val_fraction < 1:
            raise InputError(f"val_fraction must be between 0 and 1, got {self.val_fraction}")
        w = self.loss_weights
        if len(w) != len(DIMENSIONS) or not all(x in LOSS_WEIGHT for x in w) or not sum(w) > 0:
            raise InputError(f"--loss-weights needs 3 numbers (A D V) {LOSS_WEIGHT.describe()}, not all 0; "
                             f"got {list(w)}")
        with torch.random.fork_rng(devices=[]):  # building it draws initial weights: leave the caller's RNG alone
            models.create_model(self.student, **self.student_config)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able settings (stored in every checkpoint's metadata)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DistillConfig:
        """The inverse of :meth:`to_dict` (unknown keys, e.g. from a newer edgeser, are ignored)."""
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if isinstance(known.get("augment"), dict):
            known["augment"] = AugmentConfig.from_dict(known["augment"])
        if isinstance(known.get("loss_weights"), list):
            known["loss_weights"] = tuple(known["loss_weights"])
        return cls(**known)


def config_of(checkpoint: str | Path) -> DistillConfig:
    """The configuration a student checkpoint was distilled with, read from its metadata.

    ``dataclasses.replace(config_of(DEFAULT_STUDENT), seed=1)`` is the embedded default's recipe with
    another seed (its labels file is in the metadata too, as ``labels``).

    Raises:
        InputError: the file is not a readable safetensors file or was not written by ``edgeser distill``.
    """
    from .. import models

    extra = models.read_metadata(checkpoint).get("extra")
    try:
        saved = json.loads(extra)["config"] if extra else None
    except (ValueError, KeyError, TypeError):
        saved = None
    if not isinstance(saved, dict):
        raise InputError("no distillation settings in its metadata (not written by edgeser distill)",
                         path=checkpoint)
    return DistillConfig.from_dict(saved)
