"""ONNX teachers: any ONNX model that takes a float32 waveform and returns arousal, dominance, valence.

Accepted layouts:
- a ``.onnx`` file;
- a folder with ``model.onnx`` (and optionally an audonnx ``model.yaml``, read with ``yaml.safe_load``
  only for the output's labels: no class is ever instantiated from it).

The output is picked by name (``--teacher-output``, default: ``logits`` if present, else the only
output). Its last axis must have three values; if the yaml lists labels, they are reordered to
arousal, dominance, valence.

The session runs on the execution providers of its placement (:func:`edgeser.devices.onnx_providers`):
the CPU, or CUDA when asked and this onnxruntime has it. The model runs at its own precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..fileio import sha256_file
from ..runtime import onnx as ort_runtime
from ..runtime.spec import SAMPLING_RATE
from .base import check_output, label_order

__all__ = ["OnnxTeacher", "load"]


def _yaml_labels(path: Path, output: str) -> list[str] | None:
    from ..userfiles import read_yaml_mapping

    doc = read_yaml_mapping(path, what="teacher model.yaml")
    outputs = doc.get("outputs") or doc.get("output") or {}
    entry = outputs.get(output) if isinstance(outputs, dict) else None
    labels = entry.get("labels") if isinstance(entry, dict) else None
    if labels is not None and not isinstance(labels, list):
        raise InputError(f"output '{output}': labels must be a list, got a {type(labels).__name__}", path=path)
    return [str(x).lower() for x in labels] if labels else None


class OnnxTeacher:
    """An ONNX A/D/V model used as a teacher."""

    sample_rate = SAMPLING_RATE

    def __init__(self, path: str | Path, *, output: str | None = None, threads: int = 1,
                 providers: Sequence[str | tuple[str, dict[str, Any]]] | None = None) -> None:
        path = Path(path)
        model = path / "model.onnx" if path.is_dir() else path
        if not model.is_file():
            raise InputError("teacher not found" if not path.exists() else "teacher folder has no model.onnx",
                             path=path)
        try:
            self.session = ort_runtime.session(model, threads=threads, providers=providers)
        except ValueError as exc:  # one line that already names the file
            raise InputError(str(exc)) from None
        outs = [o.name for o in self.session.get_outputs()]
        if output is None:
            output = "logits" if "logits" in outs else (outs[0] if len(outs) == 1 else None)
        if output not in outs:
            raise InputError(f"teacher output '{output}' not found (outputs: {', '.join(outs)}); "
                             "choose one with --teacher-output", path=model)
        assert output is not None  # one of the outputs' names
        inp = self.session.get_inputs()[0]
        self.input_name, self.output = inp.name, output
        self.fixed_batch = isinstance(inp.shape[0], int) if inp.shape else False
        yaml_path = model.with_suffix(".yaml")
        labels = _yaml_labels(yaml_path, output) if yaml_path.is_file() else None
        self.order = None if labels is None else label_order(labels, what=f"output '{output}'", path=yaml_path)
        self.path = model
        self.name = f"onnx:{path.name}"
        self.identity = f"onnx-{sha256_file(model)[:16]}-{output}"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        try:
            if self.fixed_batch:
                outs = [self.session.run([self.output], {self.input_name: row[None]})[0] for row in batch]
                out = np.concatenate([np.asarray(o).reshape(1, -1) for o in outs])
            else:
                out = np.asarray(self.session.run([self.output], {self.input_name: batch})[0]).reshape(len(batch), -1)
        except Exception as exc:  # onnxruntime's own exception types (e.g. a window shorter than a conv kernel)
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"teacher failed on a batch of shape {batch.shape} ({message[:200]})",
                             path=self.path) from None
        if self.order is not None:
            out = out[:, self.order]
        return check_output(out, len(batch), str(self.path))


def load(path: str | Path, *, output: str | None = None, threads: int = 1,
         providers: Sequence[str | tuple[str, dict[str, Any]]] | None = None) -> OnnxTeacher:
    """Load an ONNX teacher (a ``.onnx`` file or a folder with ``model.onnx``) on ``threads`` intra-op threads.

    The session is opened by :func:`edgeser.runtime.onnx.session`, as the device runner's is, on
    ``providers`` (default: the CPU).

    Raises:
        InputError: the file is missing or not a loadable model, the output is not found, or the labels
            in ``model.yaml`` are not arousal, dominance, valence.
    """
    return OnnxTeacher(path, output=output, threads=threads, providers=providers)
