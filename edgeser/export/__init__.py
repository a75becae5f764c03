"""Exporters: one module per format, each with ``export(...)`` (checked float artefact) and ``quantise(...)``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runtime.engine import InputSpec

__all__ = ["Artefact", "exporter_for"]


@dataclass
class Artefact:
    """One model file produced by a build: the float export or a quantised variant."""

    name: str
    """``float`` or a variant name (``int8``, ``float16`` ...)."""
    path: Path
    """The model file."""
    spec: InputSpec
    """Its input spec (also stored inside the file)."""
    details: dict[str, Any] = field(default_factory=dict)
    """How it was made: quantisation settings, selection measurements, op census."""


def exporter_for(fmt: str) -> Any:
    """The exporter module for ``onnx`` or ``tflite``."""
    if fmt == "onnx":
        from . import onnx

        return onnx
    if fmt == "tflite":
        from . import tflite

        return tflite
    raise ValueError(f"unknown export format '{fmt}'")
