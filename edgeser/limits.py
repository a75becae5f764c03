"""Documented ranges of the numeric options, checked at the boundary before any work starts.

The command line declares each range on its option (``typer.Option(min=..., max=...)``, shown by
``--help``; a value outside it is a usage error, exit code 2), and the library configs
(:class:`edgeser.label.LabelConfig`, :class:`edgeser.distill.DistillConfig`) check the same ranges
with :func:`check`, so a library caller gets the same answer as a command-line user. Recipe keys have
their own table (``edgeser.recipe.RANGES``) and the streaming runtime, which imports nothing from
edgeser, keeps its own (``edgeser.runtime.stream``).

Every range is inclusive and finite: ``inf`` and ``nan`` are outside all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import InputError

__all__ = ["Range", "check", "WINDOW_SECONDS", "HOP_SECONDS", "BATCH_SIZE", "WORKERS", "THREADS", "EPOCHS",
           "WINDOWS_PER_EPOCH", "LEARNING_RATE", "WEIGHT_DECAY", "EMA_DECAY", "LOSS_WEIGHT", "PROBABILITY",
           "SNR_DB", "SEED", "LABEL", "DISTILL"]


@dataclass(frozen=True)
class Range:
    """An inclusive range of finite numbers, ``lo <= value <= hi``."""

    lo: float
    """Smallest allowed value."""
    hi: float
    """Largest allowed value."""

    def __contains__(self, value: object) -> bool:
        """True for an int or float (not a bool) within the range; False for nan and infinities."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return self.lo <= value <= self.hi

    def describe(self) -> str:
        """``between 0.1 and 60``: the range as it appears in messages and docs."""
        return f"between {_number(self.lo)} and {_number(self.hi)}"


def _number(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}".replace("e-0", "e-").replace("e+0", "e+")


WINDOW_SECONDS = Range(0.1, 60.0)
"""Window length in seconds (``label``, ``distill``, recipe ``data.window_seconds``)."""
HOP_SECONDS = Range(0.01, 60.0)
"""Hop between windows in seconds (``label``)."""
BATCH_SIZE = Range(1, 4096)
"""Windows per teacher call or training step."""
WORKERS = Range(1, 256)
"""Parallel labelling workers."""
THREADS = Range(1, 256)
"""Intra-op threads of an engine or of torch."""
EPOCHS = Range(1, 100_000)
"""Training epochs."""
WINDOWS_PER_EPOCH = Range(1, 10_000_000)
"""Training windows drawn per epoch."""
LEARNING_RATE = Range(1e-12, 10.0)
"""Peak learning rate."""
WEIGHT_DECAY = Range(0.0, 1.0)
"""AdamW weight decay."""
EMA_DECAY = Range(0.0, 0.99999)
"""Decay per step of the weights' moving average (0: off)."""
LOSS_WEIGHT = Range(0.0, 1000.0)
"""Weight of one dimension in the loss."""
PROBABILITY = Range(0.0, 1.0)
"""Probability of an augmentation."""
SNR_DB = Range(-20.0, 30.0)
"""Lowest signal-to-noise ratio of added noise, in dB (the highest is 30)."""
SEED = Range(0, 2**32 - 1)
"""Random seed (numpy's and torch's generators both take it)."""
GPUS_PER_WORKER = Range(0.0, 64.0)
"""GPUs each Ray teacher actor reserves (a fraction shares one GPU between actors)."""

LABEL: Mapping[str, Range] = {"window_seconds": WINDOW_SECONDS, "hop_seconds": HOP_SECONDS,
                              "batch_size": BATCH_SIZE, "workers": WORKERS, "threads": THREADS}
"""Ranges of :class:`edgeser.label.LabelConfig`'s numeric fields (None means the default)."""
DISTILL: Mapping[str, Range] = {"epochs": EPOCHS, "batch_size": BATCH_SIZE, "lr": LEARNING_RATE,
                                "weight_decay": WEIGHT_DECAY, "ema": EMA_DECAY, "window_seconds": WINDOW_SECONDS,
                                "windows_per_epoch": WINDOWS_PER_EPOCH, "seed": SEED, "threads": THREADS}
"""Ranges of :class:`edgeser.distill.DistillConfig`'s numeric fields (None means the default)."""


def check(config: object, ranges: Mapping[str, Range]) -> None:
    """Check each named attribute of ``config`` that is not None against its range.

    Raises:
        InputError: a value outside its range, named as its command-line option
            (``--window-seconds must be between 0.1 and 60, got 1e+09``).
    """
    for name, allowed in ranges.items():
        value = getattr(config, name)
        if value is not None and value not in allowed:
            raise InputError(f"--{name.replace('_', '-')} must be {allowed.describe()}, got {value!r}")
