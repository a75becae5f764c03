"""ONNX Runtime engine: ``load(path, *, threads=1) -> OnnxRunner``, and :func:`session`, the one place
where edgeser opens an onnxruntime session (runners, ONNX teachers)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .spec import MODEL_METADATA_KEY, InputSpec

if TYPE_CHECKING:
    import onnxruntime as ort

__all__ = ["OnnxRunner", "load", "session", "DEFAULT_PROVIDERS"]

DEFAULT_PROVIDERS = ("CPUExecutionProvider",)
"""Execution providers of a session when the caller names none."""


def session(path: str | Path, *, threads: int = 1,
            providers: Sequence[str | tuple[str, dict[str, Any]]] | None = None) -> ort.InferenceSession:
    """Open an ONNX model in onnxruntime with edgeser's session options.

    ``threads`` intra-op threads, one inter-op thread, only errors logged, and all graph optimisations.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (a positive integer).
        providers: execution providers in order of preference, each a name or ``(name, options)``;
            ``None`` means :data:`DEFAULT_PROVIDERS`. Each must be one this onnxruntime build offers
            (``onnxruntime.get_available_providers()``).

    Returns:
        The ready session.

    Raises:
        ImportError: onnxruntime is not installed (names the pip extra).
        ValueError: one line naming ``path``: not a loadable model, a bad thread count or an unavailable provider.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError("onnxruntime is not installed: pip install 'edgeser[onnx]'") from None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"{path}: threads must be a positive integer, got {threads!r}")
    chosen = list(DEFAULT_PROVIDERS if providers is None else providers)
    missing = [name for name in (p if isinstance(p, str) else p[0] for p in chosen)
               if name not in ort.get_available_providers()]
    if missing or not chosen:
        raise ValueError(f"{path}: execution provider(s) {', '.join(missing) or '(none given)'} not available in "
                         f"this onnxruntime (available: {', '.join(ort.get_available_providers())})")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # All graph optimisations (the default, stated so nobody lowers it): the layout level turns QDQ convs
    # into NHWC QLinearConv and float convs into NCHWc; EXTENDED alone is 1.3-2x slower (docs/int8-speed.md).
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), opts, providers=chosen)
    except Exception as exc:  # onnxruntime raises its own exception types for invalid models
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ValueError(f"{path}: not a loadable ONNX model ({detail})") from None


class OnnxRunner:
    """An onnxruntime session for an A/D/V model; the input spec comes from the model's metadata."""

    backend = "onnx"

    def __init__(self, path: str | Path, *, threads: int = 1) -> None:
        self.session = session(path, threads=threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        spec = InputSpec.from_dict(json.loads(meta[MODEL_METADATA_KEY])) if MODEL_METADATA_KEY in meta else None
        if spec is None:  # a foreign model: take the first input and output
            spec = InputSpec(input_name=self.session.get_inputs()[0].name,
                             output_name=self.session.get_outputs()[0].name)
        self.spec = spec
        self.own_spec = MODEL_METADATA_KEY in meta
        """True when the spec comes from the model file's own metadata (not defaults)."""
        self.path = Path(path)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 2:
            raise ValueError(f"expected a (N, T) batch, got shape {batch.shape}")
        (out,) = self.session.run([self.spec.output_name], {self.spec.input_name: batch})
        return np.asarray(out, dtype=np.float32)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame, dtype=np.float32)
        if frame.ndim != 1:
            raise ValueError(f"expected one (T,) window, got shape {frame.shape}")
        return cast(np.ndarray, self.predict(frame[None])[0])

    def reset(self) -> None:
        """Stateless model: nothing to clear."""


def load(path: str | Path, *, threads: int = 1) -> OnnxRunner:
    """Open an ONNX A/D/V model with ``threads`` intra-op threads."""
    return OnnxRunner(path, threads=threads)
