"""TFLite flatbuffers on the host: read, write, op names, tensor names, metadata, graph neighbours.

Uses the flatbuffer schema that ``ai-edge-litert`` ships (``ai_edge_litert.schema_py_generated``); a model
is the schema's object tree (``ModelT``), edited in place. Only the first subgraph is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from ..fileio import replacing

__all__ = ["schema", "read", "read_bytes", "write", "enum_names", "op_names", "text", "rename_io", "set_metadata",
           "producers", "consumers", "rewire", "numel"]


def schema() -> Any:
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


def enum_names(cls: Any) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def op_names(model: Any) -> list[str]:
    """Builtin op name (``CONV_2D`` ...) of every op of the first subgraph, in execution order."""
    builtin = enum_names(schema().BuiltinOperator)
    codes = model.operatorCodes
    out = []
    for op in model.subgraphs[0].operators:
        code = codes[op.opcodeIndex]
        if code.customCode:
            out.append(f"CUSTOM:{text(code.customCode)}")
        else:
            out.append(builtin.get(max(code.builtinCode, code.deprecatedBuiltinCode), str(code.builtinCode)))
    return out


def text(value: str | bytes | None) -> str:
    """A flatbuffer string (bytes) as str."""
    return value.decode("utf-8") if isinstance(value, bytes) else (value or "")


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
    s = schema()
    model.metadata = [m for m in (model.metadata or []) if text(m.name) not in entries]
    for name, payload in entries.items():
        buffer = s.BufferT()
        buffer.data = list(payload)
        model.buffers.append(buffer)
        entry = s.MetadataT()
        entry.name = name
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)


def producers(graph: Any) -> dict[int, int]:
    return {t: i for i, op in enumerate(graph.operators) for t in op.outputs}


def consumers(graph: Any, index: int) -> list[int]:
    outs = set(graph.operators[index].outputs)
    return [i for i, op in enumerate(graph.operators) if outs & set(op.inputs)]


def rewire(graph: Any, old: int, new: int) -> None:
    """Make every op that reads tensor ``old`` read tensor ``new`` instead."""
    for op in graph.operators:
        op.inputs = [new if t == old else t for t in op.inputs]


def numel(graph: Any, tensor: int) -> int:
    shape = graph.tensors[tensor].shape
    return int(np.prod(shape)) if shape is not None and len(shape) else 1
