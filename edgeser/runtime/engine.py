"""The engine protocol and :func:`open_model`, which picks the backend from the manifest or the file's content.

A bundle's ``manifest.json`` names its backend (``runtime.backend``). A bare model file is recognised
by its bytes (a TFLite flatbuffer carries ``TFL3`` at offset 4; anything else is tried as ONNX), never
by its name.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

__all__ = ["InputSpec", "Runner", "open_model", "sniff_backend", "MODEL_METADATA_KEY", "BACKENDS"]

MODEL_METADATA_KEY = "edgeser"
"""Key of the JSON input spec stored in a model's own metadata (ONNX metadata_props / TFLite metadata)."""
BACKENDS = ("onnx", "litert")


@dataclass(frozen=True)
class InputSpec:
    """What a model expects and returns; stored as JSON inside the model and in the bundle manifest."""

    sampling_rate: int = 16_000
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
    labels: tuple[str, ...] = ("arousal", "dominance", "valence")
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


def sniff_backend(path: str | Path) -> str:
    """``litert`` for a TFLite flatbuffer, ``onnx`` otherwise, decided by the file's bytes."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    return "litert" if head[4:8] == b"TFL3" else "onnx"


def _from_bundle(folder: Path) -> tuple[Path, str, InputSpec | None, int]:
    from .integrity import open_bundle_model

    model, manifest = open_bundle_model(folder)
    try:
        runtime = manifest["runtime"]
        return model, runtime["backend"], InputSpec.from_dict(manifest["input"]), runtime["threads"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{folder / 'manifest.json'}: corrupt input spec ({exc})") from None


def open_model(path: str | Path, *, threads: int | None = 1, backend: str | None = None) -> Runner:
    """Open a model file or a bundle folder with the right engine.

    A bundle is checked first (:func:`edgeser.runtime.integrity.open_bundle_model`): the model that
    is loaded is the one its manifest lists, with the listed sha256, and no unlisted code sits beside it.

    Args:
        path: a bundle folder (has ``manifest.json``) or a model file.
        threads: intra-op threads for the engine (default 1: predictable on small CPUs); None takes a
            bundle's ``runtime.threads`` (1 for a bare model file).
        backend: force ``onnx`` or ``litert`` instead of reading the manifest or sniffing the file.

    Raises:
        FileNotFoundError: the path does not exist.
        BundleError: a folder that is not a bundle, or does not match its manifest (a ValueError).
        ImportError: the engine for this model is not installed (names the pip extra).
        ValueError: the backend name is unknown or the model cannot be loaded.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found")
    spec: InputSpec | None = None
    if path.is_dir():
        model, chosen, spec, bundle_threads = _from_bundle(path)
        threads = threads or bundle_threads
    else:
        model, chosen = path, sniff_backend(path)
        threads = threads or 1
    chosen = backend or chosen
    if chosen == "onnx":
        from . import onnx

        return onnx.load(model, threads=threads)
    if chosen == "litert":
        from . import litert  # the manifest's spec covers files whose metadata a compiler dropped

        return litert.load(model, threads=threads, spec=spec)
    raise ValueError(f"unknown backend '{chosen}' (supported: {', '.join(BACKENDS)})")
