"""TFLite files on the host, for the exporter and the quantiser: finish a converted or quantised file
(parts, input and output names, metadata), run one, and keep the converters' own logs off the terminal."""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..runtime.frontend import logmel
from ..runtime.spec import MODEL_METADATA_KEY, InputSpec
from . import tflite_flatbuffer as fb
from . import tflite_parts

__all__ = ["quiet", "finish", "run", "model_input"]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Send the converters' own progress lines and C++ logs (fd 1 and 2) to a scratch file."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    env = {k: os.environ.get(k) for k in ("LITERT_TORCH_SHOW_PROGRESS", "TF_CPP_MIN_LOG_LEVEL")}
    os.environ.update(LITERT_TORCH_SHOW_PROGRESS="n", TF_CPP_MIN_LOG_LEVEL="2")
    with tempfile.TemporaryFile() as log, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fd in saved:
            os.dup2(log.fileno(), fd)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            for k, v in env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _metadata(spec: InputSpec, extra: dict[str, str] | None = None) -> dict[str, bytes]:
    from .. import __version__

    values = {MODEL_METADATA_KEY: spec.to_json(), "edgeser_version": __version__, **(extra or {})}
    return {k: v.encode("utf-8") for k, v in values.items()}


def finish(src: Path, dst: Path, spec: InputSpec, extra: dict[str, str] | None = None, *,
           declared: tuple[str, ...] | None = None) -> None:
    """Name the input and output, store the spec, write ``dst`` atomically.

    Args:
        declared: for a converter's output, the parts the student declares: every op is then tagged with
            its part (:func:`edgeser.export.tflite_parts.tag_parts`); None leaves the names as they are.
    """
    tree = fb.read(src)
    if declared is not None:
        tflite_parts.tag_parts(tree, tflite_parts.parts(tree, declared))
    fb.rename_io(tree, spec.input_name, spec.output_name)
    fb.set_metadata(tree, _metadata(spec, extra))
    fb.write(tree, dst)


def run(path: Path, windows: np.ndarray) -> np.ndarray:
    """The outputs of the model file on (N, window_samples) model inputs, through the device runtime."""
    from ..runtime.litert import load

    with quiet():  # the interpreter announces its CPU delegate on stderr
        runner = load(path)
    return runner.predict(windows)


def model_input(spec: InputSpec, windows: np.ndarray) -> np.ndarray:
    """What the TFLite model itself takes for (N, window_samples) waveforms: the waveforms or their log-mel."""
    if spec.frontend == "cpu-logmel":
        return logmel(windows, sampling_rate=spec.sampling_rate, **spec.frontend_config)
    return windows.astype(np.float32)
