"""Reading and editing TFLite flatbuffers on the host: parts of the graph, names, metadata, op audit.

Uses the flatbuffer schema that ``ai-edge-litert`` ships (``ai_edge_litert.schema_py_generated``).
Every op of the first subgraph gets a *part*, like :func:`edgeser.export.onnx.node_groups`:

- ``frontend``: every op the first convolution after a LOG depends on (normalisation, STFT, mel, log);
- ``softmax``: SOFTMAX ops (or a decomposed EXP softmax) up to the MUL that applies the weights;
- ``head``: the attention pooling's SUM and everything after it (Gram matrix, linear head, the SOFTMAX of
  a ``head_softmax`` layer: a softmax after the first FULLY_CONNECTED outside the front-end is never the
  attention's; the speech statistics of a ``shape_stats`` student, whose EXP follows the Gram matrix's
  FULLY_CONNECTED);
- ``body``: the rest (conv blocks, max-pool, 1x1 attention convs).

Output tensors are renamed ``<part>/<op index>`` so quantisers can select parts by name.

:func:`reciprocal_softmax` rewrites the softmax's normalising DIV as a MUL by ``1 / sum`` before static
int8 quantisation: LiteRT's int8 DIV kernel returns a saturated value instead of about zero when the
numerator is a few steps above zero and the quotient is under about a quarter of an output step (its
rounding shift passes 31 bits), which is what small attention weights over hundreds of frames are
(docs/tflite-measurements.md). :func:`drop_identity_maximum` removes the ``MAXIMUM(max, -inf)`` guard of
the decomposed softmax, which int8 turns into a clamp at the calibrated minimum.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from ..fileio import replacing

__all__ = ["read", "read_bytes", "write", "op_names", "parts", "tag_parts", "rename_io", "set_metadata", "audit",
           "fold_float_islands", "reciprocal_softmax", "drop_identity_maximum", "div_hazards", "shift_output_bias",
           "text", "PARTS", "INTEGER_TYPES", "FOLDABLE"]

PARTS = ("frontend", "softmax", "head", "body")
INTEGER_TYPES = ("INT8", "UINT8")
"""Activation types an integer accelerator runs."""
_CONSTANT_OK = ("INT8", "UINT8", "INT32")
"""Constant input types allowed in an integer op (int8 weights, int32 biases, shapes and axes)."""
FOLDABLE = ("EXP", "REDUCE_MAX")
"""Ops LiteRT runs in int8 that ai-edge-quantizer 0.10 leaves in float between DEQUANTIZE and QUANTIZE."""
_CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D")
_LAYOUT = ("TRANSPOSE", "RESHAPE")
_SOFTMAX_PIECES = ("REDUCE_MAX", "MAXIMUM", "SUB", "EXP", "SUM", "DIV")


def _schema() -> Any:
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def read(path: Path) -> Any:
    """A TFLite file as the schema's object tree (``ModelT``)."""

    return read_bytes(Path(path).read_bytes())


def read_bytes(data: bytes) -> Any:
    """A TFLite flatbuffer in memory as the schema's object tree (``ModelT``)."""
    from ai_edge_litert.tools import flatbuffer_utils

    return flatbuffer_utils.read_model_from_bytearray(bytearray(data))


def write(model: Any, path: Path) -> None:
    """Serialise ``model`` to ``path`` atomically (temp file + os.replace).

    Raises:
        OutputError: the file cannot be written.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    data = flatbuffer_utils.convert_object_to_bytearray(model)
    path = Path(path)
    try:
        with replacing(path, suffix=".tflite") as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        raise OutputError(f"cannot write model ({exc.strerror})", path=path) from None


def _names(cls: Any) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def op_names(model: Any) -> list[str]:
    """Builtin op name (``CONV_2D`` ...) of every op of the first subgraph, in execution order."""
    builtin = _names(_schema().BuiltinOperator)
    codes = model.operatorCodes
    out = []
    for op in model.subgraphs[0].operators:
        code = codes[op.opcodeIndex]
        if code.customCode:
            out.append(f"CUSTOM:{text(code.customCode)}")
        else:
            out.append(builtin.get(max(code.builtinCode, code.deprecatedBuiltinCode), str(code.builtinCode)))
    return out


def _producers(graph: Any) -> dict[int, int]:
    return {t: i for i, op in enumerate(graph.operators) for t in op.outputs}


def _ancestors(graph: Any, index: int, producers: dict[int, int]) -> set[int]:
    seen: set[int] = set()
    stack = [index]
    while stack:
        for t in graph.operators[stack.pop()].inputs:
            p = producers.get(t)
            if p is not None and p not in seen:
                seen.add(p)
                stack.append(p)
    return seen


def _consumers(graph: Any, index: int) -> list[int]:
    outs = set(graph.operators[index].outputs)
    return [i for i, op in enumerate(graph.operators) if outs & set(op.inputs)]


def _rewire(graph: Any, old: int, new: int) -> None:
    """Make every op that reads tensor ``old`` read tensor ``new`` instead."""
    for op in graph.operators:
        op.inputs = [new if t == old else t for t in op.inputs]


def _numel(graph: Any, tensor: int) -> int:
    shape = graph.tensors[tensor].shape
    return int(np.prod(shape)) if shape is not None and len(shape) else 1


def _softmax_ops(graph: Any, names: list[str], skip: set[int]) -> set[int]:
    """SOFTMAX ops (or REDUCE_MAX ... EXP ... DIV), their layout ops, and the MUL that applies the weights.

    The weighting MUL is found from the op that makes the weights through layout ops; it is
    elementwise, so its output has as many values as the weights (a broadcast MUL after pooling,
    like a Gram matrix, has more and is not part of the softmax).
    """
    found = {i for i, n in enumerate(names) if n == "SOFTMAX" and i not in skip}
    if not found:
        for e in (i for i, n in enumerate(names) if n == "EXP" and i not in skip):
            lo = max((i for i in range(e) if names[i] == "REDUCE_MAX" and i not in skip), default=e)
            hi = next((i for i in range(e, len(names)) if names[i] == "DIV"), e)
            found |= {i for i in range(lo, hi + 1) if names[i] in _SOFTMAX_PIECES}
    weights = {i for i in found if names[i] in ("SOFTMAX", "EXP")}
    sizes = {_numel(graph, graph.operators[i].outputs[0]) for i in weights}
    # a DIV makes weights when it keeps their shape (softmax); one that shrinks it normalises a pooled sum
    weights |= {i for i in found if names[i] == "DIV" and _numel(graph, graph.operators[i].outputs[0]) in sizes}
    frontier = sorted(weights)
    while frontier:
        source = frontier.pop()
        size = _numel(graph, graph.operators[source].outputs[0])
        for c in _consumers(graph, source):
            if c in found:
                continue
            if names[c] in _LAYOUT:
                found.add(c)
                frontier.append(c)
            elif names[c] == "MUL" and _numel(graph, graph.operators[c].outputs[0]) == size:
                found.add(c)
    return found


def parts(model: Any) -> list[str]:
    """The part (``frontend``, ``softmax``, ``head``, ``body``) of every op of the first subgraph."""
    graph = model.subgraphs[0]
    names = op_names(model)
    producers = _producers(graph)
    frontend: set[int] = set()
    for i, n in enumerate(names):
        if n in _CONVS:
            before = _ancestors(graph, i, producers)
            if any(names[a] == "LOG" for a in before):
                frontend = before
                break
    first_fc = next((i for i, n in enumerate(names) if n == "FULLY_CONNECTED" and i not in frontend), len(names))
    softmax = _softmax_ops(graph, names, frontend | set(range(first_fc, len(names))))
    if softmax:  # the head starts after the attention pooling
        head_start = max(softmax) + 1
    else:
        head_start = next((i for i, n in enumerate(names) if n == "SUM" and i not in frontend), len(names))
    out = []
    for i in range(len(names)):
        out.append("frontend" if i in frontend else "softmax" if i in softmax
                   else "head" if i >= head_start else "body")
    return out


def tag_parts(model: Any, op_parts: list[str], *, io: bool = False) -> None:
    """Rename op output tensors to ``<part>/<op index>``, in place.

    Graph inputs and outputs keep their names unless ``io``: then an input is named after the part of
    its first consumer (``<part>/input``) and an output after its producer, so that a quantiser selects
    them with their part (rename them back with :func:`rename_io`).
    """
    graph = model.subgraphs[0]
    boundary = set(graph.outputs) | set(graph.inputs)
    for i, (op, part) in enumerate(zip(graph.operators, op_parts, strict=True)):
        for j, t in enumerate(op.outputs):
            if io or t not in boundary:
                graph.tensors[t].name = f"{part}/{i}" + (f":{j}" if j else "")
    if io:
        for t in graph.inputs:
            first = next((i for i, op in enumerate(graph.operators) if t in op.inputs), None)
            if first is not None:
                graph.tensors[t].name = f"{op_parts[first]}/input"


def rename_io(model: Any, input_name: str, output_name: str) -> None:
    """Name the single input and output tensor (and their signature entries), in place."""
    graph = model.subgraphs[0]
    graph.tensors[graph.inputs[0]].name = input_name
    graph.tensors[graph.outputs[0]].name = output_name
    for sig in model.signatureDefs or []:
        if sig.inputs:
            sig.inputs[0].name = input_name
        if sig.outputs:
            sig.outputs[0].name = output_name


def set_metadata(model: Any, entries: dict[str, bytes]) -> None:
    """Add or replace named metadata entries (each points at its own buffer), in place."""
    schema = _schema()
    model.metadata = [m for m in (model.metadata or []) if text(m.name) not in entries]
    for name, payload in entries.items():
        buffer = schema.BufferT()
        buffer.data = list(payload)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = name
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)


def text(value: str | bytes | None) -> str:
    """A flatbuffer string (bytes) as str."""
    return value.decode("utf-8") if isinstance(value, bytes) else (value or "")


def _tensor(graph: Any, model: Any, index: int, types: dict[int, str]) -> dict[str, Any]:
    t = graph.tensors[index]
    buffer = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
    const = buffer is not None and (buffer.data is not None and len(buffer.data) > 0 or bool(buffer.size))
    return {"name": text(t.name), "dtype": types.get(t.type, str(t.type)),
            "shape": [int(s) for s in (t.shape if t.shape is not None else [])], "constant": bool(const)}


def _is_integer(inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> bool:
    acts = [t for t in inputs if not t["constant"]] + outputs
    consts = [t for t in inputs if t["constant"]]
    return (all(t["dtype"] in INTEGER_TYPES or t["dtype"] == "INT32" and _is_shape(t) for t in acts)
            and all(t["dtype"] in _CONSTANT_OK for t in consts) and any(t["dtype"] in INTEGER_TYPES for t in acts))


def _is_shape(t: dict[str, Any]) -> bool:
    return len(t["shape"]) <= 1


def audit(model: Any) -> list[dict[str, Any]]:
    """Every op with its part and the type of each input and output tensor.

    An op counts as ``int8`` when all its activations are int8/uint8 and its constants are int8, uint8
    or int32 (biases, shapes); a QUANTIZE from float or a DEQUANTIZE counts as float.
    """
    graph = model.subgraphs[0]
    types = _names(_schema().TensorType)
    names = op_names(model)
    rows = []
    for i, op in enumerate(graph.operators):
        ins = [_tensor(graph, model, t, types) for t in op.inputs if t >= 0]
        outs = [_tensor(graph, model, t, types) for t in op.outputs]
        previous = rows[-1]["part"] if rows else "body"  # graph outputs carry no part: the producer's neighbour's
        part = next((t["name"].split("/")[0] for t in outs if t["name"].split("/")[0] in PARTS), previous)
        rows.append({"index": i, "op": names[i], "part": part, "int8": _is_integer(ins, outs),
                     "inputs": [f"{t['dtype']}{t['shape']}" + ("c" if t["constant"] else "") for t in ins],
                     "outputs": [f"{t['dtype']}{t['shape']}" for t in outs]})
    return rows


def _fold_one(graph: Any, names: list[str], i: int, producers: dict[int, int]) -> set[int] | None:
    """Make op ``i`` (float, fed by a DEQUANTIZE, read by one QUANTIZE) int8.

    Returns:
        The ops that become unused, or None when op ``i`` is not such an island.
    """
    import copy

    op = graph.operators[i]
    dq = producers.get(op.inputs[0])
    users = _consumers(graph, i)
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
            _rewire(graph, requantised, op.outputs[0])
            drop.add(q)
    else:  # EXP: the int8 kernel maps the input scale to the output scale through a lookup table
        op.outputs[0] = graph.operators[q].outputs[0]
        drop.add(q)
    if not [c for c in _consumers(graph, dq) if c != i]:
        drop.add(dq)
    return drop


def fold_float_islands(model: Any, ops: tuple[str, ...] = FOLDABLE) -> int:
    """Run each DEQUANTIZE -> op -> QUANTIZE island of ``ops`` as one int8 op, in place.

    Returns:
        How many ops were folded.
    """
    graph = model.subgraphs[0]
    names = op_names(model)
    producers = _producers(graph)
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
    schema = _schema()
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
    schema = _schema()
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
    schema = _schema()
    graph = model.subgraphs[0]
    names = op_names(model)
    producers = _producers(graph)
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
    names = op_names(model)
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
        _rewire(graph, op.outputs[0], source)
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
    if data is None or not len(data) or t.type != _schema().TensorType.FLOAT32:
        return None
    return np.frombuffer(bytes(data), dtype="<f4")


def _scale_zero(tensor: Any) -> tuple[float, int]:
    q = tensor.quantization
    return float(q.scale[0]), int(q.zeroPoint[0]) if q.zeroPoint is not None and len(q.zeroPoint) else 0


def _bits(value: int) -> int:
    return int(abs(value)).bit_length()


def div_hazards(model: Any) -> list[int]:
    """Int8 DIV ops that LiteRT's kernel can get wrong: indices in the first subgraph.

    The kernel (``DivElementwise``) shifts the quotient right by ``headroom(num) + recip_shift(den) -
    output_shift`` bits, that is ``30 + bits(den) - bits(num) - output_shift``; past 31 bits the shift
    overflows and the output saturates instead of rounding to zero. An op is listed when the smallest
    nonzero numerator (one step, or the smallest constant) over the largest denominator reaches that.
    """
    import math

    graph = model.subgraphs[0]
    out = []
    for i, name in enumerate(op_names(model)):
        op = graph.operators[i]
        tensors = [graph.tensors[t] for t in (*op.inputs[:2], op.outputs[0])]
        if name != "DIV" or any(t.type != _schema().TensorType.INT8 or t.quantization is None
                                or t.quantization.scale is None for t in tensors):
            continue
        (s1, z1), (s2, z2), (s3, _) = (_scale_zero(t) for t in tensors)
        data = model.buffers[tensors[0].buffer].data if tensors[0].buffer < len(model.buffers) else None
        values = np.frombuffer(bytes(data), dtype=np.int8).astype(int) - z1 if data is not None and len(data) else None
        nonzero = values[values != 0] if values is not None else np.array([1])
        if not nonzero.size:
            continue
        num_bits = min(_bits(v) for v in nonzero)
        den_bits = max(_bits(-128 - z2), _bits(127 - z2))
        mantissa, shift = math.frexp(s1 / (s2 * s3))
        shift += round(mantissa * 2**31) == 2**31  # QuantizeMultiplier rounds the mantissa up to 1.0
        if 30 + den_bits - num_bits - shift > 31:
            out.append(i)
    return out


def shift_output_bias(model: Any, shift: np.ndarray) -> bool:
    """Add ``shift`` (one float per output) to the bias of the FULLY_CONNECTED that makes the output, in place.

    The op may be followed by a DEQUANTIZE; an int32 bias moves by ``round(shift / bias scale)`` (the bias
    scale is the input scale times each output channel's weight scale), a float32 bias by ``shift``.
    Used for bias correction after static int8: the calibration windows' mean int8 - float error is
    subtracted from the output.

    Returns:
        Whether a bias was changed (False: the output is not made by a FULLY_CONNECTED with a bias).
    """
    schema = _schema()
    graph = model.subgraphs[0]
    names = op_names(model)
    producers = _producers(graph)
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
