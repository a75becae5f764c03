"""ONNX export and static int8 (QDQ) quantisation with onnxruntime.quantization.

``export`` writes a float model with named input/output, dynamic batch and length, the input spec in
its metadata, checks it with ``onnx.checker`` and compares it with torch (fails past the recipe's
tolerance). ``quantise`` calibrates on windows of real audio and keeps the parts the recipe names in
float; which parts those are, and why, is measured in docs/quantisation.md.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExportCheckError, InputError
from ..metrics import ccc
from ..recipe import Recipe
from ..runtime.engine import MODEL_METADATA_KEY, InputSpec
from . import Artefact

__all__ = ["OPSET_VERSION", "export", "quantise", "op_census", "node_groups", "set_metadata"]

OPSET_VERSION = 17
INPUT_NAME, OUTPUT_NAME = "waveform", "adv"
PARITY_SEED = 1234
QUANT_TYPES = ("QuantizeLinear", "DequantizeLinear")


def set_metadata(path: Path, spec: InputSpec, extra: dict[str, str] | None = None) -> None:
    """Store the input spec (and extra keys) in the ONNX model's metadata_props, in place."""
    import onnx

    from .. import __version__

    model = onnx.load(str(path))
    values = {MODEL_METADATA_KEY: spec.to_json(), "edgeser_version": __version__, **(extra or {})}
    kept = [p for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in values.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "edgeser"
    onnx.save(model, str(path))


def _inline_identities(path: Path) -> None:
    """Replace Identity nodes that copy an initializer by a copy of that initializer, in place.

    The TorchScript exporter shares equal initializers (e.g. zero conv biases) through Identity nodes;
    onnxruntime's quantiser then leaves those biases in float, and the conv cannot run as int8.
    """
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    drop = []
    for n in graph.node:
        if n.op_type == "Identity" and n.input[0] in inits:
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[n.input[0]])
            copy.name = n.output[0]
            graph.initializer.append(copy)
            drop.append(n)
    for n in drop:
        graph.node.remove(n)
    onnx.save(model, str(path))


def _strip(path: Path) -> None:
    """Drop intermediate shape annotations, shorten internal tensor names to ``t<i>`` and node names to
    ``n<i>``, in place.

    The runtime re-infers shapes and reads neither; graph inputs and outputs keep their names. The tensor
    names and annotations save 9-11 KB of a 53-58 KB Wav2Small int8 model (docs/int8-speed.md); node names
    (``/head/stats_norm/BatchNormalization`` ...) are 7 KB of the default student's. Applied to the
    shipped int8 file only: :func:`node_groups` reads the float export's names.
    """
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    del graph.value_info[:]
    keep = {i.name for i in graph.input} | {o.name for o in graph.output}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        return name if not name or name in keep else names.setdefault(name, f"t{len(names)}")

    for init in graph.initializer:
        init.name = short(init.name)
    for k, n in enumerate(graph.node):
        n.name = f"n{k}"
        n.input[:] = [short(i) for i in n.input]
        n.output[:] = [short(o) for o in n.output]
    onnx.save(model, str(path))


def _run(path: Path, batch: np.ndarray) -> np.ndarray:
    from ..runtime.onnx import load

    return load(path).predict(batch)


def export(model: Any, out: Path, *, recipe: Recipe, spec: InputSpec) -> Artefact:
    """Export a torch student to ONNX and check it against torch.

    A student is exported through its ``export_view(layout)`` (``export.layout``), the same function
    grouped into its parts (:func:`node_groups` reads them); with ``fast``, a Wav2Small's view is an exact
    re-parameterisation (time-last, 16-channel, shifted first conv: docs/int8-speed.md). A module without
    ``export_view`` is exported as it is. The parity check compares with the student itself.

    Raises:
        ExportCheckError: onnx.checker rejects the model or the output differs past the tolerance.
    """
    import onnx
    import torch

    model = model.eval()
    graph_model = model.export_view(recipe.export.layout) if hasattr(model, "export_view") else model
    window = torch.from_numpy(np.random.default_rng(PARITY_SEED).standard_normal((2, spec.window_samples))
                              .astype(np.float32) * 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph_model, (window,), str(out), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch", 1: "samples"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=recipe.export.opset, dynamo=False,
            do_constant_folding=getattr(graph_model, "fold_constants", True),
        )
    _inline_identities(out)
    set_metadata(out, spec)
    try:
        onnx.checker.check_model(str(out), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportCheckError(f"onnx.checker rejected the export: {str(exc).splitlines()[0]}", path=out) from None
    with torch.no_grad():
        reference = model(window).numpy()
    # parity on the calibration length and on a different length (dynamic axis)
    got = _run(out, window.numpy())
    odd = window[:1, : spec.window_samples // 2 + 17]
    with torch.no_grad():
        ref_odd = model(odd).numpy()
    diff = max(float(np.abs(got - reference).max()), float(np.abs(_run(out, odd.numpy()) - ref_odd).max()))
    if not np.isfinite(diff) or diff > recipe.export.parity_tolerance:
        raise ExportCheckError(f"ONNX output differs from torch by {diff:.3g} "
                               f"(tolerance {recipe.export.parity_tolerance:g})", path=out)
    return Artefact("float", out, spec, {"parity_max_abs_diff": diff, "opset": recipe.export.opset,
                                         "layout": getattr(graph_model, "layout", "plain")})


def node_groups(graph: Any) -> dict[str, set[str]]:
    """The nodes of each part (``frontend``, ``softmax``, ``head``, ``body``), as the student names them.

    An export view's children are its parts (:mod:`edgeser.models.parts`), so every node it exports
    carries its part as the first name of its scope (``/body/convs.0/Conv``). A node outside any part (a
    constant the exporter adds) belongs to the part of the node that reads it; a graph without part
    scopes (a module that names no parts) is all ``body``.
    """
    from ..models.parts import PARTS

    part: dict[str, str] = {}
    for n in graph.node:
        scope = n.name.split("/")[1] if n.name.startswith("/") and n.name.count("/") > 1 else ""
        if scope in PARTS:
            part[n.name] = scope
    readers: dict[str, list[str]] = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n.name)
    for n in reversed(graph.node):  # readers come after the nodes they read
        if n.name not in part:
            known = [part[r] for o in n.output for r in readers.get(o, []) if r in part]
            part[n.name] = known[0] if known else "body"
    return {p: {name for name, q in part.items() if q == p} for p in PARTS}


class _Reader:
    """onnxruntime CalibrationDataReader over an array of windows, in small batches."""

    def __init__(self, windows: np.ndarray, batch: int = 8) -> None:
        self._batches = iter([windows[i:i + batch] for i in range(0, len(windows), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        b = next(self._batches, None)
        return None if b is None else {INPUT_NAME: np.ascontiguousarray(b, dtype=np.float32)}

    def rewind(self) -> None:  # pragma: no cover - unused by the minmax calibrator
        pass


def _quantise_once(src: Path, dst: Path, calibration: np.ndarray, *, recipe: Recipe,
                   reduce_range: bool) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    groups = node_groups(onnx.load(str(src)).graph)
    keep_float = set().union(*(groups[g] for g in recipe.quantise.float_ops)) if recipe.quantise.float_ops else set()
    nodes = sorted(set().union(*groups.values()) - keep_float)
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[recipe.quantise.calibrate_method]
    quiet = logging.getLogger()  # the quantiser logs advice through the root logger
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # histogram calibrators print
            warnings.simplefilter("ignore")
            quantize_static(
                str(src), str(dst), _Reader(calibration), quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8 if recipe.quantise.activations == "uint8" else QuantType.QInt8,
                weight_type=QuantType.QInt8,
                per_channel=recipe.quantise.per_channel, reduce_range=reduce_range,
                nodes_to_quantize=nodes, calibrate_method=method,
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            )
    finally:
        quiet.setLevel(level)


def _choices(recipe: Recipe) -> list[bool]:
    rr = recipe.quantise.reduce_range
    return [False, True] if rr == "auto" else [rr == "true"]


def _correct_bias(path: Path, q_out: np.ndarray, float_out: np.ndarray) -> list[float] | None:
    """Add the int8 model's mean output offset on the calibration windows (float - int8) to the bias of
    its float Gemm head, as the TFLite exporter does; None when the head is not a float Gemm.

    Weight rounding can move every output by a near-constant amount; CCC against the teacher counts that
    shift even when the int8 model correlates 0.9999 with the float one. Only calibration windows are used.
    """
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    graph = proto.graph
    producers = {o: n for n in graph.node for o in n.output}
    inits = {i.name: i for i in graph.initializer}
    head = producers.get(graph.output[0].name)
    if head is None or head.op_type != "Gemm" or len(head.input) < 3 or head.input[2] not in inits:
        return None
    shift = (float_out - q_out).mean(0).astype(np.float32)
    bias = numpy_helper.to_array(inits[head.input[2]]).astype(np.float32)
    if bias.shape != shift.shape:
        return None
    inits[head.input[2]].CopyFrom(numpy_helper.from_array(bias + shift, head.input[2]))
    onnx.save(proto, str(path))
    return [float(v) for v in shift]


def quantise(float_art: Artefact, out_dir: Path, calibration: np.ndarray, *, recipe: Recipe,
             model: Any = None) -> list[Artefact]:
    """Static int8 QDQ quantisation calibrated on ``calibration`` (N, T) windows.

    ``model`` (the torch student) is accepted for interface parity with the TFLite exporter and unused.

    With ``reduce_range = "auto"`` both weight ranges are tried and the one whose output agrees best
    with the float model on the calibration windows (mean CCC over A/D/V) is kept; every measurement is
    recorded in the artefact's details. The kept model's mean output offset from the float model on the
    calibration windows is then added to its float head's bias (:func:`_correct_bias`).

    Raises:
        InputError: the recipe asks for a scheme this exporter does not implement.
    """
    if recipe.quantise.scheme == "none":
        return []
    if recipe.quantise.scheme != "int8-static-qdq":
        raise InputError(f"quantise.scheme '{recipe.quantise.scheme}' is not supported for ONNX "
                         "(use int8-static-qdq or none)", path=recipe.source)
    float_out = _run(float_art.path, calibration)
    trials: list[dict[str, Any]] = []
    best: tuple[float, Path, bool, np.ndarray] | None = None
    for rr in _choices(recipe):
        dst = out_dir / f"model.int8{'.rr' if rr else ''}.onnx"
        _quantise_once(float_art.path, dst, calibration, recipe=recipe, reduce_range=rr)
        q_out = _run(dst, calibration)
        finite = bool(np.isfinite(q_out).all())
        score = float(np.mean(ccc(q_out, float_out))) if finite else float("-inf")
        err = float(np.sqrt(np.mean((q_out - float_out) ** 2))) if finite else float("inf")
        trials.append({"reduce_range": rr, "calibration_ccc_vs_float": score, "calibration_rmse_vs_float": err})
        if best is None or score > best[0]:
            best = (score, dst, rr, q_out)
    assert best is not None  # _choices is never empty
    final = out_dir / "model.int8.onnx"
    for t in trials:
        p = out_dir / f"model.int8{'.rr' if t['reduce_range'] else ''}.onnx"
        if p != best[1] and p.exists():
            p.unlink()
    os.replace(best[1], final)
    _strip(final)  # names and shape annotations only: the outputs stay those of the chosen trial
    q_out = best[3]
    correction = _correct_bias(final, q_out, float_out) if np.isfinite(q_out).all() else None
    after = _run(final, calibration) if correction is not None else q_out
    set_metadata(final, float_art.spec, {"quantisation": "int8-static-qdq"})
    details = {
        "scheme": recipe.quantise.scheme, "float_ops": list(recipe.quantise.float_ops),
        "per_channel": recipe.quantise.per_channel, "calibrate_method": recipe.quantise.calibrate_method,
        "activations": recipe.quantise.activations,
        "reduce_range": best[2], "selection": trials, "calibration_windows": int(len(calibration)),
        "output_bias_correction": correction,
        "calibration_ccc_vs_float": [float(c) for c in ccc(after, float_out)],
        "census": op_census(final),
    }
    return [Artefact("int8", final, float_art.spec, details)]


def op_census(path: Path) -> list[dict[str, Any]]:
    """Per op type, how many nodes run in int8 and how many in float.

    A node counts as int8 when every non-constant input comes from a DequantizeLinear and every output
    feeds only QuantizeLinear nodes (or a graph output), the pattern onnxruntime fuses into an int8 kernel.
    """
    import onnx

    graph = onnx.load(str(path)).graph
    producers = {o: n for n in graph.node for o in n.output}
    inits = {i.name for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    counts: Counter[tuple[str, str]] = Counter()
    for n in graph.node:
        if n.op_type in QUANT_TYPES or n.op_type in ("Constant", "Identity"):
            continue
        dyn = [i for i in n.input if i and i not in inits and
               (producers.get(i) is None or producers[i].op_type != "Constant")]
        dq = [i for i in dyn if producers.get(i) is not None and producers[i].op_type == "DequantizeLinear"]
        users = [c for o in n.output for c in consumers.get(o, [])]
        out_q = all(c.op_type == "QuantizeLinear" for c in users) and (bool(users) or n.output[0] in outputs)
        precision = "int8" if dyn and len(dq) == len(dyn) and out_q else "float"
        counts[(n.op_type, precision)] += 1
    ops = sorted({op for op, _ in counts})
    return [{"op": op, "int8": counts[(op, "int8")], "float": counts[(op, "float")]} for op in ops]

