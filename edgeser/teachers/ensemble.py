"""An ensemble of teachers: a (weighted) average of their arousal, dominance, valence."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from ..fileio import sha256_bytes
from ..runtime.spec import DIMENSIONS
from .base import Teacher, check_output

__all__ = ["Ensemble"]


class Ensemble:
    """Average several teachers' outputs, optionally weighted.

    ``name`` joins the members' names with ``+``; ``identity`` is a hash of the members' identities
    and the weights, so a labelling cache keyed by it changes when any member or weight does.

    Args:
        teachers: two or more teachers (one is accepted too) sharing one sample rate.
        weights: one non-negative weight per teacher, not all zero; ``None`` weighs them equally.
            Weights are normalised to sum to one.

    Raises:
        InputError: no teachers, different sample rates, or weights that do not fit.
    """

    def __init__(self, teachers: Sequence[Teacher], weights: Sequence[float] | None = None) -> None:
        members = list(teachers)
        if not members:
            raise InputError("an ensemble needs at least one teacher")
        rates = sorted({int(t.sample_rate) for t in members})
        if len(rates) != 1:
            listing = ", ".join(f"{t.name}: {t.sample_rate} Hz" for t in members)
            raise InputError(f"ensemble members must share one sample rate ({listing})")
        self.weights = self._normalised(weights, len(members))
        self.teachers = members
        self.sample_rate = rates[0]
        self.name = "+".join(t.name for t in members)
        self.padding_aware = any(getattr(t, "padding_aware", False) for t in members)
        """True when a member takes the valid lengths of padded clips (they are passed to those members)."""
        weighting = ",".join(f"{w:.6g}" for w in self.weights)
        digest = sha256_bytes("+".join(t.identity for t in members) + "|" + weighting)
        self.identity = f"ensemble-{digest[:16]}"

    @staticmethod
    def _normalised(weights: Sequence[float] | None, n: int) -> list[float]:
        if weights is None:
            return [1.0 / n] * n
        values = [float(w) for w in weights]
        if len(values) != n:
            raise InputError(f"got {len(values)} ensemble weights for {n} teachers")
        if any(not math.isfinite(w) or w < 0 for w in values) or sum(values) <= 0:
            raise InputError(f"ensemble weights must be finite, non-negative and not all zero, got {values}")
        total = sum(values)
        return [w / total for w in values]

    def __call__(self, batch: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """float32 (N, T) -> float32 (N, 3): the weighted mean of the members' outputs.

        ``lengths`` (valid samples of padded clips) goes to the members that are padding-aware.
        """
        n = len(batch)
        total = np.zeros((n, len(DIMENSIONS)), dtype=np.float64)
        for teacher, weight in zip(self.teachers, self.weights, strict=True):
            aware = lengths is not None and getattr(teacher, "padding_aware", False)
            out = teacher(batch, lengths) if aware else teacher(batch)  # type: ignore[call-arg]
            total += weight * check_output(out, n, teacher.name)
        return check_output(total.astype(np.float32), n, self.name)
