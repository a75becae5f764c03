"""Word bands for arousal, dominance and valence: three words per dimension, from measured thresholds.

The thresholds live in ``bands.json`` beside this module, so the device runner, its web dashboard,
``edgeser predict``, ``edgeser live`` and the Python API all say the same words. They were measured by
``tools/build_bands.py``: the default student's outputs on EmoDB's acted categories (the file records the
model, the speakers, the method and the date; docs/outputs.md explains them). They describe the default
student's scale; another model's scale may differ (:meth:`Bands.measured_on`).

A value at or below the lower threshold takes the first word, at or below the upper threshold the second,
above it the third (the dashboard's rule: the first band whose upper bound holds the value).

Examples:
    >>> bands = load_bands()
    >>> bands.word("arousal", 0.05), bands.word("arousal", 0.95)
    ('calm', 'excited')
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .spec import DIMENSIONS

__all__ = ["Bands", "load_bands", "BANDS_FILE", "WORDS"]

BANDS_FILE = Path(__file__).with_name("bands.json")
"""The measured band table shipped with the runtime (and inside every bundle)."""
WORDS: dict[str, tuple[str, str, str]] = {
    "arousal": ("calm", "neutral", "excited"),
    "dominance": ("submissive", "neutral", "dominant"),
    "valence": ("negative", "neutral", "positive"),
}
"""The words of each dimension, low to high."""
NO_WORD = "-"
"""Shown for a value that is not a finite number."""


@dataclass(frozen=True)
class Bands:
    """Two thresholds and three words per dimension, and what they were measured on."""

    thresholds: dict[str, tuple[float, float]]
    """Lower and upper threshold of each dimension (lower < upper)."""
    words: dict[str, tuple[str, str, str]] = field(default_factory=lambda: dict(WORDS))
    """Low, middle and high word of each dimension."""
    model_sha256: str = ""
    """sha256 of the student checkpoint the thresholds were measured on."""
    source: str = ""
    """One line: the model, data and date of the measurement."""

    def word(self, dimension: str, value: float) -> str:
        """The word for ``value`` of ``dimension`` (``-`` for NaN or infinity).

        Raises:
            KeyError: ``dimension`` is not arousal, dominance or valence.
        """
        low, high = self.thresholds[dimension]
        if not math.isfinite(value):
            return NO_WORD
        words = self.words[dimension]
        return words[0] if value <= low else words[1] if value <= high else words[2]

    def words_for(self, adv: Sequence[float]) -> dict[str, str]:
        """Words of an (arousal, dominance, valence) triple, by dimension name."""
        return {dim: self.word(dim, float(v)) for dim, v in zip(DIMENSIONS, adv, strict=True)}

    def describe(self, dimension: str) -> str:
        """The dimension's bands in one phrase, e.g. ``calm <= 0.324 < neutral <= 0.471 < excited``."""
        (low, high), (w0, w1, w2) = self.thresholds[dimension], self.words[dimension]
        return f"{w0} <= {low:.3f} < {w1} <= {high:.3f} < {w2}"

    def for_dashboard(self) -> dict[str, list[tuple[float, str]]]:
        """Upper bound and word of each band, ascending (the last bound is 1.0 and holds anything above)."""
        table = {}
        for dim, (low, high) in self.thresholds.items():
            w0, w1, w2 = self.words[dim]
            table[dim] = [(low, w0), (high, w1), (1.0, w2)]
        return table

    def measured_on(self, sha256: str | None) -> bool:
        """True when ``sha256`` is the checkpoint these thresholds were measured on."""
        return bool(sha256) and sha256 == self.model_sha256

    @classmethod
    def from_dict(cls, table: Mapping[str, Any]) -> Bands:
        """Read the JSON table written by ``tools/build_bands.py``.

        Raises:
            ValueError: a dimension is missing, or its thresholds are not two ascending numbers.
        """
        dims = table.get("dimensions")
        if not isinstance(dims, Mapping):
            raise ValueError("band table has no 'dimensions'")
        thresholds: dict[str, tuple[float, float]] = {}
        for dim in DIMENSIONS:
            pair = dims.get(dim, {}).get("thresholds") if isinstance(dims.get(dim), Mapping) else None
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, int | float) for x in pair)
                    and pair[0] < pair[1]):
                raise ValueError(f"band table: {dim} needs two ascending thresholds, got {pair!r}")
            thresholds[dim] = (float(pair[0]), float(pair[1]))
        entry = table.get("model")
        model: Mapping[str, Any] = entry if isinstance(entry, Mapping) else {}
        speakers = ", ".join(str(s) for s in table.get("speakers", []))
        source = (f"measured on {model.get('file', 'the default student')} over {table.get('data_name', 'EmoDB')} "
                  f"speakers {speakers} ({table.get('measured', 'undated')})")
        return cls(thresholds, dict(WORDS), str(model.get("sha256", "")), source)


@lru_cache(maxsize=4)
def load_bands(path: Path | None = None) -> Bands:
    """The band table at ``path`` (default: :data:`BANDS_FILE`), read once.

    Raises:
        ValueError: the file is missing, not JSON, or malformed (naming the file).
    """
    path = BANDS_FILE if path is None else Path(path)
    try:
        return Bands.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: cannot read the band table ({exc})") from None
