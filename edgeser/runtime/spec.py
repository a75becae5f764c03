"""What a model takes and returns (:class:`InputSpec`) and what a loaded model offers (:class:`Runner`).

Its own module, so that the engines (:mod:`.onnx`, :mod:`.litert`) and :mod:`.engine`, which picks
between them, all depend on it and not on each other.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["InputSpec", "Runner", "MODEL_METADATA_KEY", "BACKENDS", "SAMPLING_RATE", "DIMENSIONS"]

SAMPLING_RATE = 16_000
"""Rate, in Hz, of the audio every model and teacher takes."""
DIMENSIONS: tuple[str, str, str] = ("arousal", "dominance", "valence")
"""The outputs of every model and teacher, in this order."""

MODEL_METADATA_KEY = "edgeser"
"""Key of the JSON input spec stored in a model's own metadata (ONNX metadata_props / TFLite metadata)."""
BACKENDS = ("onnx", "litert")


@dataclass(frozen=True)
class InputSpec:
    """What a model expects and returns; stored as JSON inside the model and in the bundle manifest."""

    sampling_rate: int = SAMPLING_RATE
    """Input rate in Hz."""
    window_samples: int = 32_000
    """Window the model was calibrated and evaluated on, in samples (the ONNX models accept any length)."""
    input_name: str = "waveform"
    """Name of the model input."""
    output_name: str = "adv"
    """Name of the model output."""
    fixed_length: bool = False
    """True when the model only takes exactly ``window_samples`` samples (e.g. full-int8 TFLite)."""
    frontend: str = "model"
    """``model``: the model takes the raw waveform; ``cpu-logmel``: the runner computes the log-mel in numpy."""
    frontend_config: dict[str, int] = field(default_factory=dict)
    """n_fft, hop_length, n_mels for a ``cpu-logmel`` front-end."""
    input_quant: tuple[float, int] | None = None
    """(scale, zero_point) when the input tensor is int8."""
    output_quant: tuple[float, int] | None = None
    """(scale, zero_point) when the output tensor is int8."""
    labels: tuple[str, ...] = DIMENSIONS
    """Output order."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for key in ("input_quant", "output_quant"):
            if known.get(key) is not None:
                known[key] = (float(known[key][0]), int(known[key][1]))
        if "labels" in known:
            known["labels"] = tuple(known["labels"])
        return cls(**known)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


class Runner(Protocol):
    """A loaded model. ``__call__`` takes one window, ``predict`` a batch of equal-length windows."""

    spec: InputSpec
    backend: str

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """float32 (T,) at ``spec.sampling_rate`` -> float32 (3,) arousal, dominance, valence."""
        ...

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, T) -> float32 (N, 3)."""
        ...

    def reset(self) -> None:
        """Clear any state (utterance models have none; kept for the streaming protocol)."""
        ...
