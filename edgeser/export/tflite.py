"""TFLite (LiteRT) export with litert-torch and post-training quantisation with ai-edge-quantizer.

``export`` converts the torch student to a float32 flatbuffer with a fixed input (batch 1, the recipe's
window), stores the input spec in the file's metadata (entry ``edgeser``) and compares the file, run by
:mod:`edgeser.runtime.litert`, with torch on fixed waveforms; past ``export.parity_tolerance`` it fails.
With ``export.frontend = "cpu-logmel"`` (coral) the file holds only the conv body and head: it takes the
log-mel that the runner computes in numpy, so every op of it can be int8.

``quantise`` makes one model per ``quantise.variants`` entry (``float16``, ``int8-dynamic``, ``int8``),
keeps the parts named in ``quantise.float_ops`` in float, and compares each with the float model on the
calibration windows: a variant with NaN or Inf output, an int8 DIV that LiteRT's kernel can saturate
(:func:`edgeser.export.tflite_graph.div_hazards`), or (``quantise.require_int8``) any op that is not
int8, fails the build. A Wav2Small is converted with its attention pooling divided once (one DIV of
the pooled map, :func:`_divide_once`); for a per-frame softmax DIV(exp, sum) (other students, or
``pooling="as-trained"``) static int8 rewrites it as MUL(exp, DIV(1, sum))
(:func:`edgeser.export.tflite_graph.reciprocal_softmax`): the int8 DIV kernel saturates small attention
weights, which cut CCC(int8, float) on arousal to 0.37 on the default student. After static int8 the
calibration windows' mean output error is removed through the last FULLY_CONNECTED's bias
(:func:`_correct_bias`). Which routes and variants keep the signal is measured in docs/tflite-measurements.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExportCheckError, InputError
from ..metrics import ccc
from ..recipe import Recipe
from ..runtime.engine import MODEL_METADATA_KEY, InputSpec
from ..runtime.frontend import logmel
from . import Artefact
from . import tflite_graph as graph

__all__ = ["export", "quantise", "op_census", "op_audit", "read_spec", "VARIANTS", "SCHEME", "FRONTENDS"]

SCHEME = "ai-edge-quantizer"
"""``quantise.scheme`` for TFLite recipes (``none`` ships float only)."""
VARIANTS = ("float16", "int8-dynamic", "int8")
"""float16 weights; int8 weights with float activations quantised on the fly; static int8 (calibrated)."""
FRONTENDS = ("model", "cpu-logmel")
WAVEFORM_INPUT, LOGMEL_INPUT, OUTPUT_NAME = "waveform", "logmel", "adv"
PARITY_SEED = 1234
PARITY_WINDOWS = 2
CALIBRATION_THREADS = 1


# ----------------------------------------------------------------------------- torch side


POOLING = "divide-once"
"""How a Wav2Small's attention pooling is written in the converted graph (:func:`_divide_once`);
``as-trained`` converts ``softmax(2)`` then the weighted sum, as the student's own forward does."""
POOLINGS = ("divide-once", "as-trained")


def _exportable(model: Any, frontend: str, pooling: str = POOLING) -> Any:
    """The torch module to convert: the student, or (``cpu-logmel``) its part after the log-mel.

    A Wav2Small (a student with ``vgg7`` and ``adv``) is converted with its attention pooling written
    divide-once (:func:`_divide_once`), the same function with one DIV of the pooled map instead
    of a softmax DIV per frame: static int8 then keeps CCC(int8, float) at 0.998 where the per-frame
    DIV, even rewritten as MUL(exp, DIV(1, sum)), left a biased pooled map (docs/tflite-measurements.md).
    Other students convert as trained: their time softmax becomes REDUCE_MAX/SUB/EXP/SUM/DIV, whose
    weights get a calibrated int8 scale (a last-axis SOFTMAX op's fixed 1/256 output step rounds weights
    over 500 frames to 0 or one step: CCC(int8, float) 0.44 on dominance), and that DIV is rewritten in
    the flatbuffer for static int8 (:func:`_quantise_file`).
    """
    from torch import nn

    if pooling not in POOLINGS:
        raise InputError(f"unknown pooling '{pooling}' (supported: {', '.join(POOLINGS)})")
    vgg7 = getattr(model, "vgg7", None)
    wav2small = hasattr(model, "adv") and all(hasattr(vgg7, n) for n in ("lin", "sof", "convs", "feature"))
    if frontend == "cpu-logmel" and not hasattr(model, "forward_features"):
        raise InputError(f"export.frontend 'cpu-logmel' needs a student with forward_features (a Wav2Small), "
                         f"got {type(model).__name__}")
    if wav2small and pooling == "divide-once":
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
    """A Wav2Small's forward (or, ``logmel_input``, ``forward_features``) with its pooling divided once.

    The student pools ``SUM_t(lin * softmax_t(logits))``; this module computes ``SUM_t(lin * e) / SUM_t(e)``
    with ``e = exp(logits - MAX_t(logits))``: the same function (:func:`export` checks float parity with
    the student), with one DIV of the pooled (C x W) map by its sums of weights instead of a DIV per
    frame. Its int8 DIV has no tiny quotients to saturate and no attention weight is rounded to int8 on
    its own. It holds the trained modules, so the student's state-dict keys are untouched.
    """
    import torch
    from torch import nn

    class DivideOncePooling(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.student = student

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            v = self.student.vgg7
            mel = x if logmel_input else v.features(x)  # (B, 1, frames, n_mels)
            x = v.convs(mel)  # (B, C, frames/2, W)
            logits = v.sof(x)
            e = torch.exp(logits - logits.amax(2, keepdim=True))
            pooled = (v.lin(x) * e).sum(2) / e.sum(2)  # (B, C, W): the pooled map, divided once
            return self.student.head(v.feature(pooled, mel[:, 0]))

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


def _model_input(spec: InputSpec, windows: np.ndarray) -> np.ndarray:
    """What the TFLite model itself takes for (N, window_samples) waveforms: the waveforms or their log-mel."""
    if spec.frontend == "cpu-logmel":
        return logmel(windows, sampling_rate=spec.sampling_rate, **spec.frontend_config)
    return windows.astype(np.float32)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
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


def _convert(module: Any, sample: np.ndarray, path: Path) -> str:
    """litert-torch conversion of ``module`` for one fixed-shape ``sample``; returns the converter version."""
    import torch

    try:
        with _quiet():  # its import logs too
            import litert_torch
    except ImportError:
        raise ImportError("TFLite export needs litert-torch: pip install 'edgeser[tflite]'") from None
    try:
        with _quiet(), torch.no_grad():
            edge = litert_torch.convert(module, (torch.from_numpy(sample),))
            edge.export(str(path))
    except Exception as exc:  # the converter raises many types; name the first line
        raise ExportCheckError(f"litert-torch could not convert the model: {str(exc).splitlines()[0][:300]}",
                               path=path) from None
    return f"litert-torch {litert_torch.__version__}"


def _metadata(spec: InputSpec, extra: dict[str, str] | None = None) -> dict[str, bytes]:
    from .. import __version__

    values = {MODEL_METADATA_KEY: spec.to_json(), "edgeser_version": __version__, **(extra or {})}
    return {k: v.encode("utf-8") for k, v in values.items()}


def _finish(src: Path, dst: Path, spec: InputSpec, extra: dict[str, str] | None = None, *, tag: bool) -> None:
    """Tag parts (a converter's output), name the input and output, store the spec, write ``dst`` atomically."""
    tree = graph.read(src)
    if tag:
        graph.tag_parts(tree, graph.parts(tree))
    graph.rename_io(tree, spec.input_name, spec.output_name)
    graph.set_metadata(tree, _metadata(spec, extra))
    graph.write(tree, dst)


def _run(path: Path, windows: np.ndarray) -> np.ndarray:
    from ..runtime.litert import load

    with _quiet():  # the interpreter announces its CPU delegate on stderr
        runner = load(path)
    return runner.predict(windows)


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
        converter = _convert(module, _model_input(spec, windows[:1]), raw)
        _finish(raw, out, spec, tag=True)
    with torch.no_grad():
        reference = model(torch.from_numpy(windows)).numpy()
    got = _run(out, windows)
    diff = float(np.abs(got - reference).max())
    if not np.isfinite(diff) or diff > recipe.export.parity_tolerance:
        raise ExportCheckError(f"TFLite output differs from torch by {diff:.3g} "
                               f"(tolerance {recipe.export.parity_tolerance:g})", path=out)
    details = {"converter": converter, "parity_max_abs_diff": diff, "frontend": spec.frontend,
               "pooling": pooling if type(module).__name__ == "DivideOncePooling" else "as-trained",
               "census": op_census(out), "audit": op_audit(out)}
    return Artefact("float", out, spec, details)


# ----------------------------------------------------------------------------- quantisation


def _recipe_for(variant: str, keep_float: list[str]) -> Any:
    """An ai-edge-quantizer recipe manager for ``variant``; ops whose part is in ``keep_float`` are left alone."""
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager

    ops = qtyping.TFLOperationName.ALL_SUPPORTED
    quantised = [p for p in graph.PARTS if p not in keep_float]
    scope = "^(" + "|".join(quantised) + ")/"
    manager = recipe_manager.RecipeManager()
    if variant == "float16":  # weights only: every constant of the float ops (the log floor included) stays fp32
        manager.add_weight_only_config(".*", ops, 16, algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING)
    elif variant == "int8-dynamic":
        manager.add_dynamic_config(scope, ops, 8)
    elif variant == "int8":
        manager.add_static_config(scope, ops, activation_num_bits=8, weight_num_bits=8)
    else:
        raise InputError(f"unknown TFLite variant '{variant}' (supported: {', '.join(VARIANTS)})")
    return manager


def _extremes(seen: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Range update across calibration windows: the smallest minimum and largest maximum seen.

    ai-edge-quantizer's default is a moving average of per-window extremes, which on held-out speakers
    clipped the pooled features and outputs and cut CCC(int8, float) to 0.64 (docs/tflite-measurements.md).
    """
    return {"min": np.minimum(seen["min"], new["min"]), "max": np.maximum(seen["max"], new["max"])}


def _quantise_file(src: Path, dst: Path, variant: str, inputs: np.ndarray, *,
                   keep_float: list[str]) -> dict[str, int]:
    """Quantise ``src`` into ``dst``; returns how many ops each graph rewrite changed."""
    try:
        from ai_edge_quantizer import calibrator, quantizer
    except ImportError:
        raise ImportError("TFLite quantisation needs ai-edge-quantizer: pip install 'edgeser[tflite]'") from None
    tree = graph.read(src)
    op_parts = graph.parts(tree)
    rewrites = {"dropped_identity_maximum": 0, "reciprocal_softmax": 0}
    if variant == "int8" and "softmax" not in keep_float:  # softmax pieces that int8 gets wrong as converted
        n = len(op_parts)
        op_parts = graph.drop_identity_maximum(tree, op_parts)
        rewrites["dropped_identity_maximum"] = n - len(op_parts)
        n = len(op_parts)
        op_parts = graph.reciprocal_softmax(tree, op_parts)
        rewrites["reciprocal_softmax"] = len(op_parts) - n
    graph.tag_parts(tree, op_parts, io=True)  # the input and output named by their part too
    tagged = dst.with_suffix(".tagged.tflite")
    graph.write(tree, tagged)
    signature = tree.signatureDefs[0]
    key, name = graph.text(signature.signatureKey), graph.text(signature.inputs[0].name)
    manager = _recipe_for(variant, keep_float)
    try:
        with _quiet():
            qt = quantizer.Quantizer(str(tagged), manager.get_quantization_recipe())
            ranges = None
            if qt.need_calibration:
                cal = calibrator.Calibrator(tagged.read_bytes(), num_threads=CALIBRATION_THREADS,
                                            qsv_update_func=_extremes)
                cal.calibrate({key: [{name: x[None]} for x in inputs]}, manager)
                ranges = cal.get_model_qsvs()
            result = qt.quantize(ranges, enable_progress_report=False)
    except (ValueError, RuntimeError) as exc:
        raise ExportCheckError(f"ai-edge-quantizer failed on variant '{variant}': {str(exc).splitlines()[0][:300]}",
                               path=dst) from None
    finally:
        tagged.unlink(missing_ok=True)
    tree = graph.read_bytes(bytes(result.quantized_model))
    folded = graph.fold_float_islands(tree) if variant == "int8" else 0
    graph.write(tree, dst)
    return {**rewrites, "folded_float_islands": folded}


def _quant_spec(path: Path, spec: InputSpec) -> InputSpec:
    from ..runtime.litert import load

    runner = load(path)
    return dataclasses.replace(spec, input_quant=runner.spec.input_quant, output_quant=runner.spec.output_quant)


def _check_variant(variant: str, path: Path, q_out: np.ndarray, recipe: Recipe, audit: list[dict[str, Any]]) -> None:
    bad = int((~np.isfinite(q_out)).any(axis=1).sum())
    if bad:
        raise ExportCheckError(f"variant '{variant}' gives NaN or Inf on {bad} of {len(q_out)} calibration windows",
                               path=path)
    hazards = graph.div_hazards(graph.read(path)) if variant == "int8" else []
    if hazards:
        raise ExportCheckError(f"variant '{variant}': int8 DIV op(s) {', '.join(map(str, hazards))} can saturate "
                               "instead of rounding small quotients to zero (LiteRT's int8 DIV kernel)", path=path)
    if recipe.quantise.require_int8 and variant == "int8":
        floats = [f"{r['index']}:{r['op']}" for r in audit if not r["int8"]]
        if floats:
            shown = ", ".join(floats[:8]) + (" ..." if len(floats) > 8 else "")
            raise ExportCheckError(f"quantise.require_int8: {len(floats)} op(s) are not int8 ({shown})", path=path)


def quantise(float_art: Artefact, out_dir: Path, calibration: np.ndarray, *, recipe: Recipe,
             model: Any = None) -> list[Artefact]:
    """Make and check every variant in ``recipe.quantise.variants`` from the float TFLite model.

    Args:
        float_art: the artefact :func:`export` returned.
        out_dir: folder for ``model.<variant>.tflite``.
        calibration: float32 (N, window_samples) waveforms; static int8 calibrates on them (on their
            numpy log-mel for a ``cpu-logmel`` model), and every variant is compared with float on them.
        recipe: the target recipe.
        model: the torch student (unused: the float TFLite file is the reference).

    Returns:
        One artefact per variant, in recipe order; ``details`` holds how it was made, CCC and RMSE
        against float on the calibration windows, an op census and an op-by-op audit.

    Raises:
        InputError: an unknown scheme or variant.
        ExportCheckError: a variant fails to quantise, gives NaN/Inf, or (``require_int8``) keeps float ops.
    """
    del model
    if recipe.quantise.scheme == "none" or not recipe.quantise.variants:
        return []
    if recipe.quantise.scheme != SCHEME:
        raise InputError(f"quantise.scheme '{recipe.quantise.scheme}' is not supported for TFLite "
                         f"(use {SCHEME} or none)", path=recipe.source)
    calibration = np.ascontiguousarray(calibration, dtype=np.float32)
    float_out = _run(float_art.path, calibration)
    inputs = _model_input(float_art.spec, calibration)
    return [_variant(float_art, Path(out_dir), v, inputs, calibration, float_out, recipe)
            for v in recipe.quantise.variants]


def _variant(float_art: Artefact, out_dir: Path, variant: str, inputs: np.ndarray, calibration: np.ndarray,
             float_out: np.ndarray, recipe: Recipe) -> Artefact:
    """Quantise, label and check one variant; a variant that fails a check is deleted, never returned."""
    from importlib.metadata import version

    path = out_dir / f"model.{variant}.tflite"
    with tempfile.TemporaryDirectory(prefix="edgeser-quant-", dir=out_dir) as tmp:
        raw = Path(tmp) / "quantised.tflite"
        rewrites = _quantise_file(float_art.path, raw, variant, inputs, keep_float=list(recipe.quantise.float_ops))
        try:  # e.g. an int8 DIV whose divisor rounds to zero fails in the kernel
            spec = _quant_spec(raw, float_art.spec)
        except ValueError as exc:
            raise ExportCheckError(f"variant '{variant}' does not run: {str(exc).split(': ', 1)[-1]}",
                                   path=path) from None
        _finish(raw, path, spec, {"quantisation": variant}, tag=False)
    q_out = _run(path, calibration)
    correction = _correct_bias(path, q_out, float_out) if variant == "int8" and np.isfinite(q_out).all() else None
    if correction is not None:
        q_out = _run(path, calibration)
    audit = op_audit(path)
    try:
        _check_variant(variant, path, q_out, recipe, audit)
    except ExportCheckError:
        path.unlink(missing_ok=True)
        raise
    details = {
        "scheme": SCHEME, "quantizer": f"ai-edge-quantizer {version('ai-edge-quantizer')}", "variant": variant,
        "float_ops": list(recipe.quantise.float_ops), "calibration_windows": int(len(calibration)),
        "calibration_ranges": "min/max over all windows", **rewrites,
        "output_bias_correction": correction,
        "calibration_ccc_vs_float": [float(c) for c in ccc(q_out, float_out)],
        "calibration_rmse_vs_float": float(np.sqrt(np.mean((q_out - float_out) ** 2))),
        "census": op_census(path), "audit": audit, "int8_ops": sum(r["int8"] for r in audit), "ops": len(audit),
    }
    return Artefact(variant, path, spec, details)


def _correct_bias(path: Path, q_out: np.ndarray, float_out: np.ndarray) -> list[float] | None:
    """Bias correction: subtract the calibration windows' mean (int8 - float) output error, in the file.

    What is left of the int8 error after divide-once pooling is a small shift of the output (on the
    default student -0.009 / -0.006 / -0.003 on calibration windows, about the same on held-out ones), which
    CCC against the teacher feels more than CCC against float; the final FULLY_CONNECTED's int32 bias
    absorbs it (:func:`edgeser.export.tflite_graph.shift_output_bias`). Returns the shift applied per
    output, or None when the output has no such bias.
    """
    shift = -(q_out - float_out).mean(axis=0)
    tree = graph.read(path)
    if not graph.shift_output_bias(tree, shift):
        return None
    graph.write(tree, path)
    return [float(v) for v in shift]


# ----------------------------------------------------------------------------- inspection


def op_audit(path: Path) -> list[dict[str, Any]]:
    """Every op of a TFLite model in execution order: index, op, part, input/output types, ``int8``."""
    return graph.audit(graph.read(Path(path)))


def op_census(path: Path) -> list[dict[str, Any]]:
    """Per op type, how many ops run in int8 and how many in float (the same shape as the ONNX census)."""
    counts: Counter[tuple[str, bool]] = Counter((r["op"], r["int8"]) for r in op_audit(path))
    ops = sorted({op for op, _ in counts})
    return [{"op": op, "int8": counts[(op, True)], "float": counts[(op, False)]} for op in ops]


def read_spec(path: Path) -> InputSpec:
    """The input spec stored in a TFLite file's metadata."""
    from ..runtime.litert import read_metadata

    meta = read_metadata(Path(path).read_bytes())
    return InputSpec.from_dict(json.loads(meta[MODEL_METADATA_KEY].decode("utf-8")))
