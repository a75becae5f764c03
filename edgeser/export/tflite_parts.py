"""Which part of a Wav2Small-style student each op of a converted TFLite graph belongs to.

The converter keeps module names in tensor names, but the ops a student writes as functions (the
normalisation, the softmax pieces, the Gram matrix, the speech statistics) carry only the converted
module's name, so the parts are found from the graph's structure, for the parts the student declares
(``quantisable_parts()``, :data:`edgeser.models.parts.PARTS`):

- ``frontend``: every op the first convolution after a LOG depends on (normalisation, STFT, mel, log);
- ``softmax``: SOFTMAX ops (or a decomposed EXP softmax) up to the MUL that applies the weights;
- ``head``: the attention pooling's SUM and everything after it (Gram matrix, linear head, the SOFTMAX of
  a ``head_softmax`` layer: a softmax after the first FULLY_CONNECTED outside the front-end is never the
  attention's; the speech statistics of a ``shape_stats`` student, whose EXP follows the Gram matrix's
  FULLY_CONNECTED);
- ``body``: the rest (conv blocks, max-pool, 1x1 attention convs).

The export names every op's output tensors ``<part>/<op index>`` (:func:`tag_parts`); later steps read the
parts back from those names (:func:`tagged_parts`) and quantisers select parts by them.
"""

from __future__ import annotations

from typing import Any

from ..models.parts import PARTS
from . import tflite_flatbuffer as fb

__all__ = ["PARTS", "parts", "tag_parts", "tagged_parts"]

_CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D")
_LAYOUT = ("TRANSPOSE", "RESHAPE")
_SOFTMAX_PIECES = ("REDUCE_MAX", "MAXIMUM", "SUB", "EXP", "SUM", "DIV")


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
    sizes = {fb.numel(graph, graph.operators[i].outputs[0]) for i in weights}
    # a DIV makes weights when it keeps their shape (softmax); one that shrinks it normalises a pooled sum
    weights |= {i for i in found if names[i] == "DIV" and fb.numel(graph, graph.operators[i].outputs[0]) in sizes}
    frontier = sorted(weights)
    while frontier:
        source = frontier.pop()
        size = fb.numel(graph, graph.operators[source].outputs[0])
        for c in fb.consumers(graph, source):
            if c in found:
                continue
            if names[c] in _LAYOUT:
                found.add(c)
                frontier.append(c)
            elif names[c] == "MUL" and fb.numel(graph, graph.operators[c].outputs[0]) == size:
                found.add(c)
    return found


def parts(model: Any, declared: tuple[str, ...] = PARTS) -> list[str]:
    """The part (``frontend``, ``softmax``, ``head``, ``body``) of every op of the first subgraph.

    Args:
        model: a converted model tree.
        declared: the parts the student has (its ``quantisable_parts()``); no op is put in another part
            but ``body``, which every student has.
    """
    graph = model.subgraphs[0]
    names = fb.op_names(model)
    producers = fb.producers(graph)
    frontend: set[int] = set()
    for i, n in enumerate(names):
        if n in _CONVS and "frontend" in declared:
            before = _ancestors(graph, i, producers)
            if any(names[a] == "LOG" for a in before):
                frontend = before
                break
    first_fc = next((i for i, n in enumerate(names) if n == "FULLY_CONNECTED" and i not in frontend), len(names))
    skip = frontend | set(range(first_fc, len(names)))
    softmax = _softmax_ops(graph, names, skip) if "softmax" in declared else set()
    if "head" not in declared:
        head_start = len(names)
    elif softmax:  # the head starts after the attention pooling
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


def tagged_parts(model: Any) -> list[str]:
    """The part of every op, read from the ``<part>/<op index>`` names :func:`tag_parts` gave its outputs.

    An op whose outputs carry no part (a graph output, named after the model's output) is in the part of
    the op it reads from.
    """
    graph = model.subgraphs[0]
    producers = fb.producers(graph)
    out: list[str] = []
    for op in graph.operators:
        named = (fb.text(graph.tensors[t].name).split("/")[0] for t in op.outputs)
        part = next((p for p in named if p in PARTS), None)
        if part is None:
            part = next((out[producers[t]] for t in op.inputs if producers.get(t, len(out)) < len(out)), "body")
        out.append(part)
    return out
