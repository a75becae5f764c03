"""LiteRT (TFLite) engine: ``load(path, *, threads=1) -> LiteRTRunner``.

Runs every TFLite model edgeser writes: float32, float16, dynamic-range and static int8 models with the
front-end inside (android), and full-integer models whose log-mel front-end runs here on the CPU in
numpy (coral). The input spec is read from the model's own metadata (entry ``edgeser``), so a bare
``.tflite`` file is enough.

The engine is ``ai_edge_litert``. ``tflite_runtime`` (2.14, numpy 1.x only) is used only when asked
(``engine="tflite_runtime"`` or ``EDGESER_TFLITE_ENGINE=tflite_runtime``); the Edge TPU delegate
(``libedgetpu.so.1``) only when asked (``edgetpu=True`` or ``EDGESER_EDGETPU=1``) and present, else the
model runs on the CPU and the fall-back is logged.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np

from .frontend import logmel
from .spec import MODEL_METADATA_KEY, InputSpec

__all__ = ["LiteRTRunner", "load", "read_metadata", "ENGINES", "EDGETPU_LIBRARY", "EDGETPU_ENV", "ENGINE_ENV"]

ENGINES = ("ai_edge_litert", "tflite_runtime")
"""Python packages that can run a TFLite model; the first is the default."""
EDGETPU_LIBRARY = "libedgetpu.so.1"
"""The Edge TPU delegate's shared library (the ``libedgetpu1-std`` package on Debian)."""
EDGETPU_ENV = "EDGESER_EDGETPU"
"""Set to 1 to ask for the Edge TPU delegate when the caller does not say (the coral runner sets it)."""
ENGINE_ENV = "EDGESER_TFLITE_ENGINE"
"""Set to ``tflite_runtime`` to run on tflite-runtime when the caller does not say."""

ENGINE_NOTICES = (b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)
"""Lines the engine's C++ code prints on stderr when a model loads; they tell a user nothing and are dropped."""

TFLITE_RUNTIME_WRONG = ("int8-dynamic",)
"""Variants tflite-runtime 2.14 runs without an error but with wrong output (it returned the bias alone)."""

_log = logging.getLogger("edgeser.runtime")

# Field slots of the TFLite schema (tensorflow/compiler/mlir/lite/schema/schema.fbs) read below.
_MODEL_BUFFERS, _MODEL_METADATA = 4, 6
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2


def _field(buf: bytes, table: int, slot: int) -> int | None:
    """Absolute position of field ``slot`` of the flatbuffer table at ``table``, or None when absent."""
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    vtable_bytes = struct.unpack_from("<H", buf, vtable)[0]
    entry = 4 + 2 * slot
    if entry >= vtable_bytes:
        return None
    offset = struct.unpack_from("<H", buf, vtable + entry)[0]
    return table + offset if offset else None


def _deref(buf: bytes, pos: int) -> int:
    return pos + cast(int, struct.unpack_from("<I", buf, pos)[0])


def _vector(buf: bytes, pos: int | None) -> tuple[int, int]:
    """(start, length) of the vector whose offset sits at ``pos`` ((0, 0) when absent)."""
    if pos is None:
        return 0, 0
    start = _deref(buf, pos)
    return start + 4, struct.unpack_from("<I", buf, start)[0]


def read_metadata(data: bytes) -> dict[str, bytes]:
    """The ``metadata`` entries of a TFLite flatbuffer as {name: bytes}, with the standard library alone.

    Raises:
        ValueError: the bytes are not a TFLite flatbuffer.
    """
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (no TFL3 identifier)")
    root = _deref(data, 0)
    buf_start, n_buffers = _vector(data, _field(data, root, _MODEL_BUFFERS))
    meta_start, n_meta = _vector(data, _field(data, root, _MODEL_METADATA))
    out: dict[str, bytes] = {}
    for i in range(n_meta):
        entry = _deref(data, meta_start + 4 * i)
        name_pos = _field(data, entry, _METADATA_NAME)
        index_pos = _field(data, entry, _METADATA_BUFFER)
        if name_pos is None or index_pos is None:
            continue
        name_start, name_len = _vector(data, name_pos)
        index = struct.unpack_from("<I", data, index_pos)[0]
        if index >= n_buffers:
            continue
        buffer = _deref(data, buf_start + 4 * index)
        offset_pos, size_pos = _field(data, buffer, _BUFFER_OFFSET), _field(data, buffer, _BUFFER_SIZE)
        offset = struct.unpack_from("<Q", data, offset_pos)[0] if offset_pos else 0
        if offset > 1:  # large models keep buffers after the flatbuffer
            size = struct.unpack_from("<Q", data, size_pos)[0] if size_pos else 0
            payload = data[offset:offset + size]
        else:
            start, length = _vector(data, _field(data, buffer, _BUFFER_DATA))
            payload = data[start:start + length]
        out[data[name_start:name_start + name_len].decode("utf-8")] = bytes(payload)
    return out


def _interpreter_class(engine: str) -> Any:
    if engine == "ai_edge_litert":
        try:
            from ai_edge_litert.interpreter import Interpreter, load_delegate
        except ImportError:
            raise ImportError("ai-edge-litert is not installed: pip install 'edgeser[litert]'") from None
    elif engine == "tflite_runtime":
        try:
            from tflite_runtime.interpreter import Interpreter, load_delegate
        except ImportError:
            raise ImportError("tflite-runtime is not installed: pip install tflite-runtime "
                              "(Python <= 3.11, numpy < 2)") from None
        _log.info("running on tflite_runtime as asked")
    else:
        raise ValueError(f"unknown TFLite engine '{engine}' (supported: {', '.join(ENGINES)})")
    return Interpreter, load_delegate


@contextmanager
def _without_notices() -> Iterator[None]:
    """Hold back what is written to stderr (file descriptor 2) in the block; then pass it on, less the
    engine's :data:`ENGINE_NOTICES`. The engine writes from C++, past ``sys.stderr``."""
    import tempfile

    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to guard
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().splitlines(keepends=True)
                    if line.rstrip(b"\r\n") not in ENGINE_NOTICES]
            if kept:
                os.write(2, b"".join(kept))


def _quant(detail: dict[str, Any]) -> tuple[float, int] | None:
    """(scale, zero_point) of an int8/uint8 tensor, None for a float one."""
    if np.dtype(detail["dtype"]) not in (np.dtype(np.int8), np.dtype(np.uint8)):
        return None
    scale, zero_point = detail["quantization"]
    return float(scale), int(zero_point)


class LiteRTRunner:
    """A LiteRT interpreter for an A/D/V model; the input spec comes from the model's metadata.

    Args:
        path: a ``.tflite`` file.
        threads: interpreter threads (default 1).
        engine: ``ai_edge_litert`` (default) or ``tflite_runtime`` (only when asked).
        edgetpu: load the Edge TPU delegate when its library is present; else run on the CPU (logged).
        spec: the input spec to use when the file carries none (e.g. from a bundle manifest, for a model
            rewritten by a tool that drops metadata); the file's own spec wins when present.

    Raises:
        ImportError: the engine is not installed (names the pip extra).
        ValueError: the file is not a loadable TFLite model.
    """

    backend = "litert"

    def __init__(self, path: str | Path, *, threads: int = 1, engine: str = "ai_edge_litert",
                 edgetpu: bool = False, spec: InputSpec | None = None) -> None:
        interpreter_cls, load_delegate = _interpreter_class(engine)
        self.path = Path(path)
        data = self.path.read_bytes()
        try:
            meta = read_metadata(data)
        except (ValueError, struct.error) as exc:
            raise ValueError(f"{path}: not a TFLite model ({exc})") from None
        delegates = self._delegates(load_delegate) if edgetpu else []
        self.delegate = "edgetpu" if delegates else "cpu"
        try:
            with _without_notices():  # the engine announces its CPU delegate on stderr: no news to a user
                self.interpreter = interpreter_cls(model_path=str(path), num_threads=threads,
                                                   experimental_delegates=delegates or None)
                self.interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f"{path}: not a loadable TFLite model ({str(exc).splitlines()[0][:200]})") from None
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self.own_spec = MODEL_METADATA_KEY in meta
        """True when the spec comes from the model file's own metadata (not the manifest or defaults)."""
        if spec is not None and not self.own_spec:
            meta = {**meta, MODEL_METADATA_KEY: spec.to_json().encode("utf-8")}
        self.spec = self._spec(meta)
        self.engine = engine
        self._check_engine(meta)

    def _check_engine(self, meta: dict[str, bytes]) -> None:
        """Refuse what an engine is known to get wrong; run once so that missing kernels fail at load."""
        variant = meta.get("quantisation", b"").decode("utf-8", "replace")
        if self.engine == "tflite_runtime" and variant in TFLITE_RUNTIME_WRONG:
            raise ValueError(f"{self.path}: tflite-runtime 2.14 computes '{variant}' models wrongly "
                             "(measured in docs/tflite-measurements.md); use ai-edge-litert")
        try:
            self(np.zeros(self.spec.window_samples, dtype=np.float32))
        except RuntimeError as exc:
            raise ValueError(f"{self.path}: {self.engine} cannot run this model "
                             f"({str(exc).splitlines()[0][:200]})") from None

    @staticmethod
    def _delegates(load_delegate: Any) -> list[Any]:
        import ctypes

        try:  # probe first: the engines' Delegate object fails noisily in __del__ when its library is missing
            ctypes.CDLL(EDGETPU_LIBRARY)
            return [load_delegate(EDGETPU_LIBRARY)]
        except (ValueError, OSError) as exc:
            _log.warning("Edge TPU delegate %s not loaded (%s): running on the CPU", EDGETPU_LIBRARY,
                         str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return []

    def _spec(self, meta: dict[str, bytes]) -> InputSpec:
        shape = [int(s) for s in self._input["shape"]]
        if MODEL_METADATA_KEY in meta:
            spec = InputSpec.from_dict(json.loads(meta[MODEL_METADATA_KEY].decode("utf-8")))
        else:  # a foreign model: a waveform in, three values out, fixed length
            spec = InputSpec(input_name=self._input["name"], output_name=self._output["name"],
                             window_samples=shape[-1], fixed_length=True)
        # the quantisation actually in the file wins over what the metadata says
        values = spec.to_dict()
        values.update(input_quant=_quant(self._input), output_quant=_quant(self._output), fixed_length=True)
        return InputSpec.from_dict(values)

    def _features(self, frame: np.ndarray) -> np.ndarray:
        """One (T,) window -> the model's input tensor (batch of one), quantised when the input is int8."""
        n = self.spec.window_samples
        x = frame[:n] if frame.shape[0] >= n else np.pad(frame, (0, n - frame.shape[0]))
        x = x[None].astype(np.float32)
        if self.spec.frontend == "cpu-logmel":
            x = logmel(x, sampling_rate=self.spec.sampling_rate, **self.spec.frontend_config)
        x = x.reshape(self._input["shape"])
        quant = _quant(self._input)
        if quant is not None:
            info = np.iinfo(self._input["dtype"])
            x = np.clip(np.round(x / quant[0]) + quant[1], info.min, info.max)
        return x.astype(self._input["dtype"])

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame, dtype=np.float32)
        if frame.ndim != 1:
            raise ValueError(f"expected one (T,) window, got shape {frame.shape}")
        self.interpreter.set_tensor(self._input["index"], self._features(frame))
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self._output["index"]).reshape(-1)
        quant = _quant(self._output)
        if quant is not None:
            out = (out.astype(np.float32) - quant[1]) * quant[0]
        return cast(np.ndarray, out.astype(np.float32))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 2:
            raise ValueError(f"expected a (N, T) batch, got shape {batch.shape}")
        if len(batch) == 0:
            return np.zeros((0, len(self.spec.labels)), dtype=np.float32)
        return np.stack([self(w) for w in batch])

    def reset(self) -> None:
        """Stateless model: nothing to clear."""


def load(path: str | Path, *, threads: int = 1, engine: str | None = None, edgetpu: bool | None = None,
         spec: InputSpec | None = None) -> LiteRTRunner:
    """Open a TFLite A/D/V model with ``threads`` interpreter threads.

    Args:
        path: a ``.tflite`` file written by edgeser (or any model with one waveform input and one output).
        threads: interpreter threads (default 1).
        engine: ``ai_edge_litert`` or ``tflite_runtime``; default ``$EDGESER_TFLITE_ENGINE`` or ai_edge_litert.
        edgetpu: try the Edge TPU delegate (``libedgetpu.so.1``), falling back to the CPU with a warning;
            default ``$EDGESER_EDGETPU == "1"``.
        spec: input spec for a file without edgeser metadata (the file's own spec wins when present).

    Raises:
        ImportError: the engine is not installed (names the pip extra).
        ValueError: unknown engine, or not a loadable TFLite model.
    """
    engine = engine or os.environ.get(ENGINE_ENV) or ENGINES[0]
    if edgetpu is None:
        edgetpu = os.environ.get(EDGETPU_ENV, "") == "1"
    return LiteRTRunner(path, threads=threads, engine=engine, edgetpu=edgetpu, spec=spec)
