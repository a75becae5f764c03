"""Reading and editing TFLite flatbuffers on the host: parts of the graph, names, metadata, op audit.

Uses the flatbuffer schema that ``ai-edge-litert`` ships (``ai_edge_litert.schema_py_generated``).
Every op of the first subgraph gets a *part*, like :func:`edgeser.export.onnx.node_groups`:

- ``frontend``: every op the first convolution after a LOG depends on (normalisation, STFT, mel, log);
- ``softmax``: SOFTMAX ops (or a decomposed EXP softmax) up to the MUL that applies the weights;
- ``head``: the attention pooling's SUM and everything after it (Gram matrix, linear head);
- ``body``: the rest (conv blocks, max-pool, 1x1 attention convs).

Output tensors are renamed ``<part>/<op index>`` so quantisers can select parts by name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError

__all__ = ["read", "read_bytes", "write", "op_names", "parts", "tag_parts", "rename_io", "set_metadata", "audit",
           "fold_float_islands", "text", "PARTS", "INTEGER_TYPES", "FOLDABLE"]

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
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".tflite", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
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
    softmax = _softmax_ops(graph, names, frontend)
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
    if names[i] == "REDUCE_MAX":  # a max keeps its input's scale; the QUANTIZE then requantises int8 -> int8
        out = graph.tensors[op.outputs[0]]
        out.type = graph.tensors[int_input].type
        out.quantization = copy.deepcopy(graph.tensors[int_input].quantization)
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
