"""edgeser: speech emotion recognition (arousal, dominance, valence) distilled, quantised and bundled for edge devices.

Importing edgeser imports neither torch nor onnxruntime; those load inside the modules that need them.
:func:`load` (from :mod:`edgeser.api`) is imported on first use.

Examples:
    >>> from edgeser import load
    >>> load().predict_file("speech.wav")  # doctest: +SKIP
    Result(arousal=0.812 excited, dominance=0.601 dominant, valence=0.331 neutral, windows=1)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("edgeser")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

from .errors import DriftError, EdgeserError, ExportCheckError, InputError, OutputError, VerifyError
from .metrics import DIMENSIONS, agreement, ccc, mae, pearson

if TYPE_CHECKING:
    from .api import Model, Result, load

_LAZY = {"load": "load", "Model": "Model", "Result": "Result"}
"""Names served from :mod:`edgeser.api` on first use, so that ``import edgeser`` stays light."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import api

        return getattr(api, _LAZY[name])
    raise AttributeError(f"module 'edgeser' has no attribute {name!r}")


__all__ = [
    "__version__", "load", "Model", "Result",
    "DIMENSIONS", "ccc", "pearson", "mae", "agreement",
    "EdgeserError", "InputError", "DriftError", "ExportCheckError", "OutputError", "VerifyError",
]
