"""The ONNX exporter's parts come from the names the student gives them, and they are the parts the exporter
used to infer from the graph's shape (kept here, only for this comparison), so quantisation selects the
same nodes and the shipped model's bytes do not change (scripts/same_model_bytes.py checks the bytes)."""

from __future__ import annotations

from typing import Any

import onnx
import pytest
import torch

from edgeser import models, testing
from edgeser.defaults import default_student_path
from edgeser.export.onnx import export, node_groups
from edgeser.models.parts import PARTS
from edgeser.recipe import load_recipe
from edgeser.runtime.spec import InputSpec

SPEC = InputSpec(window_samples=16_000)


def _structural_groups(graph: Any) -> dict[str, set[str]]:
    """The exporter's former inference of a Wav2Small's parts from the graph's shape (verbatim).

    frontend: every node the first 2-D convolution depends on; softmax: the Softmax over time, the node
    giving its logits and the Mul applying it; head: everything from the pooling's ReduceSum on; body: the rest.
    """
    producers = {out: n for n in graph.node for out in n.output}
    inits = {i.name: i for i in graph.initializer}

    def ancestors(node: Any) -> set[str]:
        seen: set[str] = set()
        stack = [node]
        while stack:
            n = stack.pop()
            for i in n.input:
                p = producers.get(i)
                if p is not None and p.name not in seen:
                    seen.add(p.name)
                    stack.append(p)
        return seen

    conv2d = next((n for n in graph.node if n.op_type == "Conv" and len(n.input) > 1
                   and n.input[1] in inits and len(inits[n.input[1]].dims) == 4), None)
    frontend = ancestors(conv2d) if conv2d is not None else set()
    reduce = next((n for n in graph.node if n.op_type == "ReduceSum" and n.name not in frontend), None)
    head: set[str] = set()
    if reduce is not None:
        order = [n.name for n in graph.node]
        head = set(order[order.index(reduce.name):])
    softmax = {n.name for n in graph.node if n.op_type == "Softmax" and n.name not in head}
    soft_inputs = {i for n in graph.node if n.name in softmax for i in n.input}
    soft_outputs = {o for n in graph.node if n.name in softmax for o in n.output}
    softmax |= {producers[i].name for i in soft_inputs if i in producers}
    softmax |= {n.name for n in graph.node if n.op_type == "Mul" and soft_outputs & set(n.input)}
    body = {n.name for n in graph.node} - frontend - softmax - head
    return {"frontend": frontend, "softmax": softmax, "head": head, "body": body}


def _students() -> dict[str, Any]:
    torch.manual_seed(0)
    tiny = models.create_model("wav2small").eval()
    return {
        "default": models.load(default_student_path()),
        "tiny": tiny,
        "tiny, shape_stats": models.create_model("wav2small", shape_stats=1).eval(),
        "tiny, softmax head": testing.with_softmax_head(tiny),
        "tiny, relu head": testing.with_relu_head(tiny),
    }


def _assert_a_partition(graph: Any, groups: dict[str, set[str]], parts: tuple[str, ...]) -> None:
    names = [n.name for n in graph.node]
    assert len(set(names)) == len(names)
    assert set(groups) == set(PARTS)
    assert all(groups[p] for p in parts), {p: len(groups[p]) for p in parts}  # every declared part has nodes
    assert not any(groups[p] for p in PARTS if p not in parts)  # and no other part does
    assert sum(len(g) for g in groups.values()) == len(names) and set().union(*groups.values()) == set(names)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(_students()))
def test_declared_parts_are_the_inferred_parts(name, tmp_path):
    model = _students()[name]
    art = export(model, tmp_path / "model.onnx", recipe=load_recipe("rpi"), spec=SPEC)
    assert art.details["layout"] == "fast"
    graph = onnx.load(str(art.path)).graph
    declared, inferred = node_groups(graph), _structural_groups(graph)
    _assert_a_partition(graph, declared, model.quantisable_parts())
    # constants the exporter adds (reduction axes) have no scope: they go with their reader, not by position
    ops = {n.name: n.op_type for n in graph.node}
    for part in PARTS:
        differ = {(n, ops[n]) for n in declared[part] ^ inferred[part] if ops[n] != "Constant"}
        assert not differ, (part, sorted(differ))
    assert {ops[n] for n in declared["softmax"]} == {"Conv", "Softmax", "Mul"}
    assert "Log" in {ops[n] for n in declared["frontend"]} and "Gemm" in {ops[n] for n in declared["head"]}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["wav2small", "mobilenetv4_conv_small.035", "mobilenetv3_small"])
def test_every_node_of_a_plain_export_is_in_one_declared_part(name, tmp_path):
    torch.manual_seed(0)
    model = models.create_model(name).eval()
    recipe = load_recipe("rpi", **{"export.layout": "plain"})
    art = export(model, tmp_path / "model.onnx", recipe=recipe, spec=SPEC)
    assert art.details["layout"] == "plain"
    graph = onnx.load(str(art.path)).graph
    groups = node_groups(graph)
    _assert_a_partition(graph, groups, model.quantisable_parts())
    ops = {n.name: n.op_type for n in graph.node}
    assert "Log" in {ops[n] for n in groups["frontend"]} and "Gemm" in {ops[n] for n in groups["head"]}
    assert "Log" not in {ops[n] for p in ("body", "head") for n in groups[p]}
