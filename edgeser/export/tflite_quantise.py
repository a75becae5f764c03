"""Post-training quantisation of a float TFLite model with ai-edge-quantizer, one model per variant.

``quantise`` makes one model per ``quantise.variants`` entry (``float16``, ``int8-dynamic``, ``int8``),
keeps the parts named in ``quantise.float_ops`` in float (the parts the export tagged in tensor names,
:mod:`edgeser.export.tflite_parts`), and compares each with the float model on the calibration windows:
a variant with NaN or Inf output, an int8 DIV that LiteRT's kernel can saturate
(:func:`edgeser.export.tflite_audit.div_hazards`), or (``quantise.require_int8``) any op that is not int8,
fails the build. For a per-frame softmax DIV(exp, sum) static int8 rewrites it as MUL(exp, DIV(1, sum))
(:func:`edgeser.export.tflite_passes.reciprocal_softmax`): the int8 DIV kernel saturates small attention
weights, which cut CCC(int8, float) on arousal to 0.37 on the default student. After static int8 the
calibration windows' mean output error is removed through the last FULLY_CONNECTED's bias
(:func:`_correct_bias`). Which routes and variants keep the signal is measured in docs/tflite-measurements.md.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExportCheckError, InputError
from ..metrics import ccc
from ..recipe import Recipe
from ..runtime.spec import InputSpec
from . import Artefact, tflite_audit, tflite_parts
from . import tflite_flatbuffer as fb
from . import tflite_passes as passes
from .tflite_files import finish, model_input, quiet, run

__all__ = ["quantise", "VARIANTS", "SCHEME"]

SCHEME = "ai-edge-quantizer"
"""``quantise.scheme`` for TFLite recipes (``none`` ships float only)."""
VARIANTS = ("float16", "int8-dynamic", "int8")
"""float16 weights; int8 weights with float activations quantised on the fly; static int8 (calibrated)."""
CALIBRATION_THREADS = 1


def _recipe_for(variant: str, keep_float: list[str]) -> Any:
    """An ai-edge-quantizer recipe manager for ``variant``; ops whose part is in ``keep_float`` are left alone."""
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager

    ops = qtyping.TFLOperationName.ALL_SUPPORTED
    quantised = [p for p in tflite_parts.PARTS if p not in keep_float]
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
    tree = fb.read(src)
    op_parts = tflite_parts.tagged_parts(tree)  # as the export tagged them
    rewrites = {"dropped_identity_maximum": 0, "reciprocal_softmax": 0}
    if variant == "int8" and "softmax" not in keep_float:  # softmax pieces that int8 gets wrong as converted
        n = len(op_parts)
        op_parts = passes.drop_identity_maximum(tree, op_parts)
        rewrites["dropped_identity_maximum"] = n - len(op_parts)
        n = len(op_parts)
        op_parts = passes.reciprocal_softmax(tree, op_parts)
        rewrites["reciprocal_softmax"] = len(op_parts) - n
    tflite_parts.tag_parts(tree, op_parts, io=True)  # the input and output named by their part too
    tagged = dst.with_suffix(".tagged.tflite")
    fb.write(tree, tagged)
    signature = tree.signatureDefs[0]
    key, name = fb.text(signature.signatureKey), fb.text(signature.inputs[0].name)
    manager = _recipe_for(variant, keep_float)
    try:
        with quiet():
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
    tree = fb.read_bytes(bytes(result.quantized_model))
    folded = passes.fold_float_islands(tree) if variant == "int8" else 0
    fb.write(tree, dst)
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
    hazards = tflite_audit.div_hazards(fb.read(path)) if variant == "int8" else []
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
    float_out = run(float_art.path, calibration)
    inputs = model_input(float_art.spec, calibration)
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
        finish(raw, path, spec, {"quantisation": variant})
    q_out = run(path, calibration)
    correction = _correct_bias(path, q_out, float_out) if variant == "int8" and np.isfinite(q_out).all() else None
    if correction is not None:
        q_out = run(path, calibration)
    audit = tflite_audit.op_audit(path)
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
        "census": tflite_audit.op_census(path), "audit": audit, "int8_ops": sum(r["int8"] for r in audit),
        "ops": len(audit),
    }
    return Artefact(variant, path, spec, details)


def _correct_bias(path: Path, q_out: np.ndarray, float_out: np.ndarray) -> list[float] | None:
    """Bias correction: subtract the calibration windows' mean (int8 - float) output error, in the file.

    What is left of the int8 error after divide-once pooling is a small shift of the output (on the
    default student -0.009 / -0.006 / -0.003 on calibration windows, about the same on held-out ones), which
    CCC against the teacher feels more than CCC against float; the final FULLY_CONNECTED's int32 bias
    absorbs it (:func:`edgeser.export.tflite_passes.shift_output_bias`). Returns the shift applied per
    output, or None when the output has no such bias.
    """
    shift = -(q_out - float_out).mean(axis=0)
    tree = fb.read(path)
    if not passes.shift_output_bias(tree, shift):
        return None
    fb.write(tree, path)
    return [float(v) for v in shift]
