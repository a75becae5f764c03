"""edgeser: speech emotion recognition (arousal, dominance, valence) distilled, quantised and bundled for edge devices.

Importing edgeser imports neither torch nor onnxruntime; those load inside the modules that need them.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edgeser")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

from .errors import DriftError, EdgeserError, ExportCheckError, InputError, OutputError, VerifyError
from .metrics import DIMENSIONS, agreement, ccc, mae, pearson

__all__ = [
    "__version__",
    "DIMENSIONS",
    "ccc",
    "pearson",
    "mae",
    "agreement",
    "EdgeserError",
    "InputError",
    "DriftError",
    "ExportCheckError",
    "OutputError",
    "VerifyError",
]
