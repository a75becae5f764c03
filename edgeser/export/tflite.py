"""TFLite (LiteRT) export with litert-torch; quantisation is in :mod:`edgeser.export.tflite_quantise`.

``export`` converts the torch student to a float32 flatbuffer with a fixed input (batch 1, the recipe's
window), tags every op with the student's part (:mod:`edgeser.export.tflite_parts`), stores the input spec
in the file's metadata (entry ``edgeser``) and compares the file, run by :mod:`edgeser.runtime.litert`,
with torch on fixed waveforms; past ``export.parity_tolerance`` it fails. With ``export.frontend =
"cpu-logmel"`` (coral) the file holds only the conv body and head: it takes the log-mel that the runner
computes in numpy, so every op of it can be int8. A student with ``forward_divide_once`` (a Wav2Small) is
converted with its attention pooling divided once (one DIV of the pooled map, :func:`_divide_once`).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..errors import ExportCheckError, InputError
from ..recipe import Recipe
from ..runtime.spec import MODEL_METADATA_KEY, InputSpec
from . import Artefact
from .tflite_audit import op_audit, op_census
from .tflite_files import finish, model_input, quiet, run
from .tflite_quantise import SCHEME, VARIANTS, quantise

__all__ = ["export", "quantise", "op_census", "op_audit", "read_spec", "VARIANTS", "SCHEME", "FRONTENDS"]

FRONTENDS = ("model", "cpu-logmel")
WAVEFORM_INPUT, LOGMEL_INPUT, OUTPUT_NAME = "waveform", "logmel", "adv"
PARITY_SEED = 1234
PARITY_WINDOWS = 2


# ----------------------------------------------------------------------------- torch side


POOLING = "divide-once"
"""How a Wav2Small's attention pooling is written in the converted graph (:func:`_divide_once`);
``as-trained`` converts ``softmax(2)`` then the weighted sum, as the student's own forward does."""
POOLINGS = ("divide-once", "as-trained")


def _exportable(model: Any, frontend: str, pooling: str = POOLING) -> Any:
    """The torch module to convert: the student, or (``cpu-logmel``) its part after the log-mel.

    A student with ``forward_divide_once`` (a Wav2Small) is converted with its attention pooling written
    divide-once (:func:`_divide_once`), the same function with one DIV of the pooled map instead
    of a softmax DIV per frame: static int8 then keeps CCC(int8, float) at 0.998 where the per-frame
    DIV, even rewritten as MUL(exp, DIV(1, sum)), left a biased pooled map (docs/tflite-measurements.md).
    Other students convert as trained: their time softmax becomes REDUCE_MAX/SUB/EXP/SUM/DIV, whose
    weights get a calibrated int8 scale (a last-axis SOFTMAX op's fixed 1/256 output step rounds weights
    over 500 frames to 0 or one step: CCC(int8, float) 0.44 on dominance), and that DIV is rewritten in
    the flatbuffer for static int8 (:func:`edgeser.export.tflite_passes.reciprocal_softmax`).
    """
    from torch import nn

    if pooling not in POOLINGS:
        raise InputError(f"unknown pooling '{pooling}' (supported: {', '.join(POOLINGS)})")
    if frontend == "cpu-logmel" and not hasattr(model, "forward_features"):
        raise InputError(f"export.frontend 'cpu-logmel' needs a student with forward_features (a Wav2Small), "
                         f"got {type(model).__name__}")
    if hasattr(model, "forward_divide_once") and pooling == "divide-once":
        return _divide_once(model, logmel_input=frontend == "cpu-logmel").eval()
    if frontend != "cpu-logmel":
        return model

    class AfterLogmel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.student = model

        def forward(self, mel: Any) -> Any:  # (B, 1, frames, n_mels) -> (B, 3)
            return self.student.forward_features(mel)

    return AfterLogmel().eval()


def _divide_once(student: Any, *, logmel_input: bool) -> Any:
    """The module that runs ``student.forward_divide_once`` (a Wav2Small's forward, or with ``logmel_input``
    its ``forward_features``, with the attention pooling divided once).

    It holds the trained modules, so the student's state-dict keys are untouched. The converter names
    constant tensors after the module path, this class's qualified name first, and the files keep those
    names: moving or renaming the class changes the bytes of every converted model.
    """
    import torch
    from torch import nn

    class DivideOncePooling(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.student = student

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return cast(torch.Tensor, self.student.forward_divide_once(x, logmel_input=logmel_input))

    return DivideOncePooling()


def _tflite_spec(model: Any, recipe: Recipe, spec: InputSpec) -> InputSpec:
    frontend = recipe.export.frontend
    if frontend not in FRONTENDS:
        raise InputError(f"export.frontend must be one of {', '.join(FRONTENDS)}, got '{frontend}'",
                         path=recipe.source)
    config: dict[str, int] = {}
    if frontend == "cpu-logmel":
        cfg = getattr(model, "cfg", None)
        if cfg is None:
            raise InputError("export.frontend 'cpu-logmel' needs a Wav2Small student", path=recipe.source)
        config = {"n_fft": int(cfg.n_fft), "hop_length": int(cfg.hop_length), "n_mels": int(cfg.n_mels)}
    return dataclasses.replace(spec, fixed_length=True, frontend=frontend, frontend_config=config,
                               input_name=LOGMEL_INPUT if frontend == "cpu-logmel" else WAVEFORM_INPUT,
                               output_name=OUTPUT_NAME, input_quant=None, output_quant=None)


def _convert(module: Any, sample: np.ndarray, path: Path) -> str:
    """litert-torch conversion of ``module`` for one fixed-shape ``sample``; returns the converter version."""
    import torch

    try:
        with quiet():  # its import logs too
            import litert_torch
    except ImportError:
        raise ImportError("TFLite export needs litert-torch: pip install 'edgeser[tflite]'") from None
    try:
        with quiet(), torch.no_grad():
            edge = litert_torch.convert(module, (torch.from_numpy(sample),))
            edge.export(str(path))
    except Exception as exc:  # the converter raises many types; name the first line
        raise ExportCheckError(f"litert-torch could not convert the model: {str(exc).splitlines()[0][:300]}",
                               path=path) from None
    return f"litert-torch {litert_torch.__version__}"


def export(model: Any, out: Path, *, recipe: Recipe, spec: InputSpec, pooling: str = POOLING) -> Artefact:
    """Convert a torch student to a float32 TFLite model and check it against torch.

    Args:
        model: a registered student (torch module, (B, T) -> (B, 3)).
        out: the ``.tflite`` file to write.
        recipe: the target recipe (``export.frontend``, ``export.parity_tolerance``).
        spec: the build's input spec; the returned artefact's spec is the TFLite one (fixed length,
            front-end, input name), which the build must use from here on.
        pooling: ``divide-once`` (default) or ``as-trained``: how a Wav2Small's attention pooling is
            written in the graph (:func:`_exportable`); both compute the same function.

    Raises:
        InputError: ``cpu-logmel`` asked for a student without a Wav2Small front-end.
        ExportCheckError: the conversion fails, or the file's output differs from torch past
            ``export.parity_tolerance`` on fixed inputs.
    """
    import torch

    model = model.eval()
    spec = _tflite_spec(model, recipe, spec)
    windows = (np.random.default_rng(PARITY_SEED).standard_normal((PARITY_WINDOWS, spec.window_samples))
               .astype(np.float32) * np.float32(0.1))
    module = _exportable(model, spec.frontend, pooling)
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="edgeser-tflite-", dir=out.parent) as tmp:
        raw = Path(tmp) / "converted.tflite"
        converter = _convert(module, model_input(spec, windows[:1]), raw)
        declared = model.quantisable_parts() if hasattr(model, "quantisable_parts") else ()
        finish(raw, out, spec, declared=tuple(declared))
    with torch.no_grad():
        reference = model(torch.from_numpy(windows)).numpy()
    got = run(out, windows)
    diff = float(np.abs(got - reference).max())
    if not np.isfinite(diff) or diff > recipe.export.parity_tolerance:
        raise ExportCheckError(f"TFLite output differs from torch by {diff:.3g} "
                               f"(tolerance {recipe.export.parity_tolerance:g})", path=out)
    details = {"converter": converter, "parity_max_abs_diff": diff, "frontend": spec.frontend,
               "pooling": pooling if type(module).__name__ == "DivideOncePooling" else "as-trained",
               "census": op_census(out), "audit": op_audit(out)}
    return Artefact("float", out, spec, details)


# ----------------------------------------------------------------------------- inspection


def read_spec(path: Path) -> InputSpec:
    """The input spec stored in a TFLite file's metadata."""
    from ..runtime.litert import read_metadata

    meta = read_metadata(Path(path).read_bytes())
    return InputSpec.from_dict(json.loads(meta[MODEL_METADATA_KEY].decode("utf-8")))
