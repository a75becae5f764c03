"""Rewrite passes on TFLite models, in place: int8 fixes around the attention softmax, float islands run as
int8, and the output bias shift of bias correction.

:func:`reciprocal_softmax` rewrites the softmax's normalising DIV as a MUL by ``1 / sum`` before static
int8 quantisation: LiteRT's int8 DIV kernel returns a saturated value instead of about zero when the
numerator is a few steps above zero and the quotient is under about a quarter of an output step (its
rounding shift passes 31 bits), which is what small attention weights over hundreds of frames are
(docs/tflite-measurements.md). :func:`drop_identity_maximum` removes the ``MAXIMUM(max, -inf)`` guard of
the decomposed softmax, which int8 turns into a clamp at the calibrated minimum.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import tflite_flatbuffer as fb

__all__ = ["FOLDABLE", "fold_float_islands", "reciprocal_softmax", "drop_identity_maximum", "shift_output_bias"]

FOLDABLE = ("EXP", "REDUCE_MAX")
"""Ops LiteRT runs in int8 that ai-edge-quantizer 0.10 leaves in float between DEQUANTIZE and QUANTIZE."""


def _fold_one(graph: Any, names: list[str], i: int, producers: dict[int, int]) -> set[int] | None:
    """Make op ``i`` (float, fed by a DEQUANTIZE, read by one QUANTIZE) int8.

    Returns:
        The ops that become unused, or None when op ``i`` is not such an island.
    """
    import copy

    op = graph.operators[i]
    dq = producers.get(op.inputs[0])
    users = fb.consumers(graph, i)
    if dq is None or names[dq] != "DEQUANTIZE" or len(users) != 1 or names[users[0]] != "QUANTIZE":
        return None
    q = users[0]
    int_input = graph.operators[dq].inputs[0]
    op.inputs[0] = int_input
    drop: set[int] = set()
    if names[i] == "REDUCE_MAX":
        # a max keeps its input's scale, and its readers take it so: requantised to the max's own calibrated
        # range, a max below that range is clamped up, and on quiet input every softmax weight rounds to zero
        out = graph.tensors[op.outputs[0]]
        out.type = graph.tensors[int_input].type
        out.quantization = copy.deepcopy(graph.tensors[int_input].quantization)
        requantised = graph.operators[q].outputs[0]
        if requantised not in graph.outputs:
            fb.rewire(graph, requantised, op.outputs[0])
            drop.add(q)
    else:  # EXP: the int8 kernel maps the input scale to the output scale through a lookup table
        op.outputs[0] = graph.operators[q].outputs[0]
        drop.add(q)
    if not [c for c in fb.consumers(graph, dq) if c != i]:
        drop.add(dq)
    return drop


def fold_float_islands(model: Any, ops: tuple[str, ...] = FOLDABLE) -> int:
    """Run each DEQUANTIZE -> op -> QUANTIZE island of ``ops`` as one int8 op, in place.

    Returns:
        How many ops were folded.
    """
    graph = model.subgraphs[0]
    names = fb.op_names(model)
    producers = fb.producers(graph)
    drop: set[int] = set()
    folded = 0
    for i, name in enumerate(names):
        if name in ops:
            removed = _fold_one(graph, names, i, producers)
            if removed is not None:
                folded += 1
                drop |= removed
    graph.operators = [op for k, op in enumerate(graph.operators) if k not in drop]
    return folded


def _opcode(model: Any, name: str) -> int:
    """Index of builtin op ``name`` in the model's operator codes, added when missing."""
    schema = fb.schema()
    code = getattr(schema.BuiltinOperator, name)
    for i, c in enumerate(model.operatorCodes):
        if not c.customCode and max(c.builtinCode, c.deprecatedBuiltinCode) == code:
            return i
    entry = schema.OperatorCodeT()
    entry.builtinCode, entry.deprecatedBuiltinCode, entry.version = code, min(code, 127), 1
    model.operatorCodes.append(entry)
    return len(model.operatorCodes) - 1


def _float_tensor(graph: Any, model: Any, name: str, shape: list[int], value: float | None = None) -> int:
    """Append a float32 tensor (a constant when ``value`` is given, else an activation); returns its index."""
    schema = fb.schema()
    t = schema.TensorT()
    t.name, t.type, t.shape, t.buffer = name, schema.TensorType.FLOAT32, list(shape), 0
    if value is not None:
        buffer = schema.BufferT()
        buffer.data = list(np.asarray(value, dtype="<f4").tobytes())
        model.buffers.append(buffer)
        t.buffer = len(model.buffers) - 1
    graph.tensors.append(t)
    return len(graph.tensors) - 1


def reciprocal_softmax(model: Any, op_parts: list[str]) -> list[str]:
    """Rewrite each softmax DIV(exp, sum) of a float model as MUL(exp, DIV(1, sum)), in place.

    The quotient of the new DIV is at least 1 / (number of softmax terms) and its numerator a constant,
    so LiteRT's int8 DIV kernel keeps its rounding shift in range; the weights come from an int8 MUL.
    In float the result is the same up to rounding.

    Args:
        model: a float TFLite model tree (before quantisation).
        op_parts: the part of every op (:func:`parts`).

    Returns:
        The part of every op after the rewrite (the new DIV joins ``softmax``).
    """
    schema = fb.schema()
    graph = model.subgraphs[0]
    names = fb.op_names(model)
    producers = fb.producers(graph)
    targets = [i for i, n in enumerate(names) if n == "DIV" and op_parts[i] == "softmax"
               and graph.operators[i].inputs[0] in producers and graph.operators[i].inputs[1] in producers
               and names[producers[graph.operators[i].inputs[0]]] == "EXP"]
    if not targets:
        return list(op_parts)
    div_code, mul_code = _opcode(model, "DIV"), _opcode(model, "MUL")
    out_parts = list(op_parts)
    for i in reversed(targets):  # later inserts first, so earlier indices stay valid
        op = graph.operators[i]
        total = op.inputs[1]
        one = _float_tensor(graph, model, f"reciprocal_one/{i}", [], 1.0)
        recip = _float_tensor(graph, model, f"reciprocal/{i}", list(graph.tensors[total].shape))
        new = schema.OperatorT()
        new.opcodeIndex, new.inputs, new.outputs = div_code, [one, total], [recip]
        new.builtinOptionsType, new.builtinOptions = schema.BuiltinOptions.DivOptions, schema.DivOptionsT()
        options = schema.MulOptionsT()
        options.fusedActivationFunction = op.builtinOptions.fusedActivationFunction if op.builtinOptions else 0
        op.opcodeIndex, op.inputs = mul_code, [op.inputs[0], recip]
        op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.MulOptions, options
        graph.operators.insert(i, new)
        out_parts.insert(i, "softmax")
    return out_parts


def drop_identity_maximum(model: Any, op_parts: list[str]) -> list[str]:
    """Remove MAXIMUM ops whose constant input is all -inf (an identity in float), in place.

    torch's softmax converts with ``MAXIMUM(reduce_max, -inf)``; int8 stores the -inf as the range's
    lowest step, so the op becomes a clamp: a column whose logits all lie below the calibrated minimum
    of the maxima gets every weight rounded to zero, and the int8 DIV then divides by zero.

    Returns:
        The part of every op after the removal.
    """
    graph = model.subgraphs[0]
    names = fb.op_names(model)
    keep = list(range(len(names)))
    boundary = set(graph.outputs)
    for i, name in enumerate(names):
        op = graph.operators[i]
        if name != "MAXIMUM" or len(op.inputs) != 2 or op.outputs[0] in boundary:
            continue
        consts = [_constant(model, graph, t) for t in op.inputs]
        which = [j for j, c in enumerate(consts) if c is not None and c.size and np.all(np.isneginf(c))]
        if len(which) != 1:
            continue
        source = op.inputs[1 - which[0]]
        fb.rewire(graph, op.outputs[0], source)
        keep.remove(i)
    graph.operators = [graph.operators[i] for i in keep]
    _drop_unused_tensors(model)
    return [op_parts[i] for i in keep]


def _drop_unused_tensors(model: Any) -> None:
    """Remove tensors of the first subgraph that no op, graph input/output or signature uses; renumber."""
    graph = model.subgraphs[0]
    signatures = [e for sig in model.signatureDefs or [] for e in [*(sig.inputs or []), *(sig.outputs or [])]]
    used = {t for op in graph.operators for t in [*op.inputs, *op.outputs] if t >= 0}
    used |= set(graph.inputs) | set(graph.outputs) | {e.tensorIndex for e in signatures}
    index = {old: new for new, old in enumerate(sorted(used))}
    graph.tensors = [graph.tensors[t] for t in sorted(used)]
    for op in graph.operators:
        op.inputs = [index[t] if t >= 0 else t for t in op.inputs]
        op.outputs = [index[t] for t in op.outputs]
    graph.inputs = [index[t] for t in graph.inputs]
    graph.outputs = [index[t] for t in graph.outputs]
    for e in signatures:
        e.tensorIndex = index[e.tensorIndex]


def _constant(model: Any, graph: Any, tensor: int) -> np.ndarray | None:
    """A float32 constant tensor's values, else None."""
    t = graph.tensors[tensor]
    data = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
    if data is None or not len(data) or t.type != fb.schema().TensorType.FLOAT32:
        return None
    return np.frombuffer(bytes(data), dtype="<f4")


def shift_output_bias(model: Any, shift: np.ndarray) -> bool:
    """Add ``shift`` (one float per output) to the bias of the FULLY_CONNECTED that makes the output, in place.

    The op may be followed by a DEQUANTIZE; an int32 bias moves by ``round(shift / bias scale)`` (the bias
    scale is the input scale times each output channel's weight scale), a float32 bias by ``shift``.
    Used for bias correction after static int8: the calibration windows' mean int8 - float error is
    subtracted from the output.

    Returns:
        Whether a bias was changed (False: the output is not made by a FULLY_CONNECTED with a bias).
    """
    schema = fb.schema()
    graph = model.subgraphs[0]
    names = fb.op_names(model)
    producers = fb.producers(graph)
    op = producers.get(graph.outputs[0])
    if op is not None and names[op] in ("DEQUANTIZE", "QUANTIZE"):
        op = producers.get(graph.operators[op].inputs[0])
    if op is None or names[op] != "FULLY_CONNECTED" or len(graph.operators[op].inputs) < 3:
        return False
    tensor = graph.tensors[graph.operators[op].inputs[2]] if graph.operators[op].inputs[2] >= 0 else None
    if tensor is None or tensor.buffer >= len(model.buffers) or model.buffers[tensor.buffer].data is None:
        return False
    shift = np.asarray(shift, dtype=np.float64).ravel()
    buffer = model.buffers[tensor.buffer]
    quantised = tensor.quantization is not None and tensor.quantization.scale is not None
    if tensor.type == schema.TensorType.INT32 and quantised:
        values = np.frombuffer(bytes(buffer.data), dtype="<i4").astype(np.int64)
        scale = np.broadcast_to(np.asarray(tensor.quantization.scale, dtype=np.float64), values.shape)
        values = np.clip(values + np.round(shift / scale), -2**31, 2**31 - 1).astype("<i4")
    elif tensor.type == schema.TensorType.FLOAT32:
        values = (np.frombuffer(bytes(buffer.data), dtype="<f4") + shift).astype("<f4")
    else:
        return False
    if values.size != shift.size:
        return False
    buffer.data = list(values.tobytes())
    return True
