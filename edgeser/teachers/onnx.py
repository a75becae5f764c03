"""ONNX teachers: any ONNX model that takes a float32 waveform and returns arousal, dominance, valence.

Accepted layouts:
- a ``.onnx`` file;
- a folder with ``model.onnx`` (and optionally an audonnx ``model.yaml``, read with ``yaml.safe_load``
  only for the output's labels: no class is ever instantiated from it).

The output is picked by name (``--teacher-output``, default: ``logits`` if present, else the only
output). Its last axis must have three values; if the yaml lists labels, they are reordered to
arousal, dominance, valence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .base import check_output, file_digest

__all__ = ["OnnxTeacher", "load"]

ORDER = ("arousal", "dominance", "valence")


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

    sample_rate = 16_000

    def __init__(self, path: str | Path, *, output: str | None = None, threads: int = 1) -> None:
        import onnxruntime as ort

        path = Path(path)
        model = path / "model.onnx" if path.is_dir() else path
        if not model.is_file():
            raise InputError("teacher not found" if not path.exists() else "teacher folder has no model.onnx",
                             path=path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 4  # failures become InputErrors below; no duplicate ORT log line
        try:
            self.session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for invalid files
            raise InputError(f"not a loadable ONNX model ({str(exc).splitlines()[0][:160]})", path=model) from None
        outs = [o.name for o in self.session.get_outputs()]
        if output is None:
            output = "logits" if "logits" in outs else (outs[0] if len(outs) == 1 else None)
        if output not in outs:
            raise InputError(f"teacher output '{output}' not found (outputs: {', '.join(outs)}); "
                             "choose one with --teacher-output", path=model)
        inp = self.session.get_inputs()[0]
        self.input_name, self.output = inp.name, output
        self.fixed_batch = isinstance(inp.shape[0], int) if inp.shape else False
        yaml_path = model.with_suffix(".yaml")
        labels = _yaml_labels(yaml_path, output) if yaml_path.is_file() else None
        self.order = None
        if labels is not None:
            if sorted(labels) != sorted(ORDER):
                raise InputError(f"output '{output}' has labels {labels}, expected {list(ORDER)}", path=yaml_path)
            self.order = [labels.index(d) for d in ORDER]
        self.path = model
        self.name = f"onnx:{path.name}"
        self.identity = f"onnx-{file_digest(model)}-{output}"

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


def load(path: str | Path, *, output: str | None = None, threads: int = 1) -> OnnxTeacher:
    return OnnxTeacher(path, output=output, threads=threads)
