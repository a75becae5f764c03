"""The op audit of a TFLite model: every op with its part and whether it runs in int8, and the int8 DIV
ops that LiteRT's kernel can get wrong."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from . import tflite_flatbuffer as fb
from .tflite_parts import PARTS

__all__ = ["INTEGER_TYPES", "audit", "div_hazards", "op_audit", "op_census"]

INTEGER_TYPES = ("INT8", "UINT8")
"""Activation types an integer accelerator runs."""
_CONSTANT_OK = ("INT8", "UINT8", "INT32")
"""Constant input types allowed in an integer op (int8 weights, int32 biases, shapes and axes)."""


def _tensor(graph: Any, model: Any, index: int, types: dict[int, str]) -> dict[str, Any]:
    t = graph.tensors[index]
    buffer = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
    const = buffer is not None and (buffer.data is not None and len(buffer.data) > 0 or bool(buffer.size))
    return {"name": fb.text(t.name), "dtype": types.get(t.type, str(t.type)),
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
    types = fb.enum_names(fb.schema().TensorType)
    names = fb.op_names(model)
    rows: list[dict[str, Any]] = []
    for i, op in enumerate(graph.operators):
        ins = [_tensor(graph, model, t, types) for t in op.inputs if t >= 0]
        outs = [_tensor(graph, model, t, types) for t in op.outputs]
        previous = rows[-1]["part"] if rows else "body"  # graph outputs carry no part: the producer's neighbour's
        part = next((t["name"].split("/")[0] for t in outs if t["name"].split("/")[0] in PARTS), previous)
        rows.append({"index": i, "op": names[i], "part": part, "int8": _is_integer(ins, outs),
                     "inputs": [f"{t['dtype']}{t['shape']}" + ("c" if t["constant"] else "") for t in ins],
                     "outputs": [f"{t['dtype']}{t['shape']}" for t in outs]})
    return rows


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
    for i, name in enumerate(fb.op_names(model)):
        op = graph.operators[i]
        tensors = [graph.tensors[t] for t in (*op.inputs[:2], op.outputs[0])]
        if name != "DIV" or any(t.type != fb.schema().TensorType.INT8 or t.quantization is None
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


def op_audit(path: Path) -> list[dict[str, Any]]:
    """Every op of a TFLite model file in execution order: index, op, part, input/output types, ``int8``."""
    return audit(fb.read(Path(path)))


def op_census(path: Path) -> list[dict[str, Any]]:
    """Per op type, how many ops run in int8 and how many in float (the same shape as the ONNX census)."""
    counts: Counter[tuple[str, bool]] = Counter((r["op"], r["int8"]) for r in op_audit(path))
    ops = sorted({op for op, _ in counts})
    return [{"op": op, "int8": counts[(op, True)], "float": counts[(op, False)]} for op in ops]
