"""Which export, quantisation and session settings make ORT int8 fastest relative to float for Wav2Small?

Run by hand (not a test); prints the tables logged in research/log.md ("int8 speed"), measured in one run on
this machine:

    python research/int8_speed.py                                   # default student if present
    python research/int8_speed.py --student S.safetensors --audio ../shared/data/emodb/labels.csv
    python research/int8_speed.py --student S --profile             # + per-op-type time (ORT profiler)

Every graph variant is an exact re-parameterisation of the same student (checked: max |variant - torch|
is printed); every int8 variant is calibrated on the same windows through ``edgeser.export.onnx``'s
quantiser (QOperator and node-exclusion variants call onnxruntime.quantization directly, with the
same settings). Timing: all sessions (and torch eager) run interleaved in one process, single thread,
order reversed every round, in blocks of BLOCK runs per variant (the first discarded) so each timed
run finds its model in cache; the table gives the median (and 10th percentile) of the calling
thread's CPU time (``time.thread_time``), which a busy shared machine disturbs far less than wall time.
CCC(int8, float) is per dimension (arousal, dominance, valence) on held-out windows
(speaker-disjoint from the calibration windows), against today's plain float export.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

EMODB = Path("../shared/data/emodb/labels.csv")
SECONDS = (1, 4)
BLOCK = 5  # runs per variant per round; the first is a warm-up
TORCH = "torch eager (plain)"
LIBRARY_FAST = "library fast"  # graph of edgeser's own export.layout = "fast", when the installed edgeser has it
LOG10_SCALE = 10.0 / float(np.log(10.0))  # 10 * log10(x) == LOG10_SCALE * ln(x)


# ---------------------------------------------------------------------------------------------
# Exact re-parameterisations of Wav2Small for export
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Graph:
    """How the student is laid out in the exported graph (every option keeps the function exact)."""

    pad: int = 0
    """Pad the conv channels to this many with zero filters (0: keep the student's own)."""
    l1: str = "conv"
    """First conv: ``conv`` (3x3 on the 1-channel log-mel), ``shift3`` (copies of the log-mel shifted along the
    last axis as channels, and a 3x1 kernel) or ``im2col`` (3x3 shifted copies, 1x1 kernel)."""
    l1_in: int = 1
    """Input channels of the first conv; int8 kernels want a multiple of 4. Channels beyond the ones the
    kernel needs are more copies (or shifts) of the input with zero weights."""
    time_last: bool = False
    """Lay the log-mel out as (B, 1, mel, time), so convs run along the long time axis and softmax is over the last."""
    merged_stft: bool = False
    """One STFT conv with real and imaginary rows stacked (66 outputs) and the mel matrix stacked twice."""
    pad_head: bool = False
    """Pad the 1x1 attention convs' outputs too and slice the pooled map back (int8 kernels want >= 16)."""
    fold_log_scale: bool = False
    """Fold the 10/ln(10) of 10*log10 into the first conv's weights (one Log, no Div/Mul)."""


def _export_view(student: Any, g: Graph) -> Any:
    """A torch module computing exactly ``student`` (a Wav2Small), laid out as ``g`` says."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from edgeser.models.frontend import prenorm

    def folded(block: Any) -> tuple[torch.Tensor, torch.Tensor]:
        w = block.conv.weight.detach().double()
        bn = block.norm
        s = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        return (w * s[:, None, None, None]).float(), (bn.bias.detach().double() - bn.running_mean.double() * s).float()

    def padded(w: torch.Tensor, b: torch.Tensor, out: int, inp: int) -> tuple[torch.Tensor, torch.Tensor]:
        wp = torch.zeros(out, inp, *w.shape[2:])
        wp[: w.shape[0], : w.shape[1]] = w
        bp = torch.zeros(out)
        bp[: b.shape[0]] = b
        return wp, bp

    v = student.vgg7
    c = student.cfg.channels
    p = max(g.pad, c)
    used = {"conv": 1, "shift3": 3, "im2col": 9}[g.l1]
    extra_shifts = {"conv": 0, "shift3": g.l1_in - 3, "im2col": -(-(g.l1_in - 9) // 3) if g.l1_in > 9 else 0}[g.l1]
    if g.l1_in < used:
        raise ValueError(f"l1_in must be at least {used} for l1={g.l1}")

    def _end(start: int, total: int) -> int | None:
        return start - total or None  # slice end counted from the end: constant in the graph

    class View(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            se = v.spectrogram_extractor
            self.hop = se.conv_real.stride[0]
            wr, wi = se.conv_real.weight.detach().clone(), se.conv_imag.weight.detach().clone()
            mel = v.logmel_extractor.melW.detach().clone()  # (F, M)
            self.register_buffer("stft", torch.cat([wr, wi]) if g.merged_stft else wr)
            self.register_buffer("stft_imag", wi)
            mel = torch.cat([mel, mel]) if g.merged_stft else mel
            self.register_buffer("mel", mel.t().contiguous() if g.time_last else mel)
            self.register_buffer("amin", torch.tensor([1e-10]))
            self.convs = nn.ModuleList(self._conv(i, blk) for i, blk in enumerate(
                [v.l1, v.l2, v.l3, v.l4, v.l5, v.l6, v.l7]))
            self.lin, self.sof = self._one_by_one(v.lin), self._one_by_one(v.sof)
            self.adv = student.adv

        def _conv(self, i: int, blk: Any) -> nn.Conv2d:
            w, b = folded(blk)
            if i == 0 and g.fold_log_scale:
                w = w * LOG10_SCALE
            w, b = padded(w, b, p, g.l1_in if i == 0 else p)
            if g.time_last:
                w = w.transpose(2, 3).contiguous()  # kernel (mel, time)
            if i == 0 and g.l1 == "im2col":
                conv, wk = nn.Conv2d(g.l1_in, p, 1), torch.zeros(p, g.l1_in, 1, 1)
                for i in range(3):
                    for j in range(3):
                        wk[:, i * (3 + extra_shifts) + j, 0, 0] = w[:, 0, i, j]
            elif i == 0 and g.l1 == "shift3":
                conv, wk = nn.Conv2d(g.l1_in, p, (3, 1), padding=(1, 0)), torch.zeros(p, g.l1_in, 3, 1)
                wk[:, :3, :, 0] = w[:, 0].permute(0, 2, 1)  # [o, mel, time shift] -> [o, shift, mel]
            else:
                conv, wk = nn.Conv2d(w.shape[1], p, 3, padding=1), w
            conv.weight.data.copy_(wk)
            conv.bias.data.copy_(b)
            return conv

        def _one_by_one(self, src: nn.Conv2d) -> nn.Conv2d:
            out = p if g.pad_head else c
            w, b = padded(src.weight.detach(), src.bias.detach(), out, p)
            conv = nn.Conv2d(p, out, 1)
            conv.weight.data.copy_(w)
            conv.bias.data.copy_(b)
            return conv

        def features(self, x: torch.Tensor) -> torch.Tensor:
            x = prenorm(x)[:, None, :]  # (B, 1, T)
            s = F.conv1d(x, self.stft, stride=self.hop) ** 2  # (B, F or 2F, frames)
            if not g.merged_stft:
                s = s + F.conv1d(x, self.stft_imag, stride=self.hop) ** 2
            mel = torch.matmul(self.mel, s) if g.time_last else torch.matmul(s.transpose(1, 2), self.mel)
            mel = torch.log(torch.maximum(mel, self.amin))
            if not g.fold_log_scale:
                mel = mel * LOG10_SCALE
            return mel[:, None]  # (B, 1, mel, frames) or (B, 1, frames, mel)

        def first_input(self, x: torch.Tensor) -> torch.Tensor:
            # Slices with constant bounds only (no shape arithmetic in the graph); channels beyond the ones
            # the kernel uses are further shifted copies whose weights are zero, not zero channels (no Pad).
            if g.l1 == "im2col":
                xp = F.pad(x, (1, 1 + extra_shifts, 1, 1))
                return torch.cat([xp[:, :, i:_end(i, 2), j:_end(j, 2 + extra_shifts)]
                                  for i in range(3) for j in range(3 + extra_shifts)][: g.l1_in], 1)
            if g.l1 == "shift3":
                xp = F.pad(x, (1, 1 + extra_shifts))  # along the last axis
                return torch.cat([xp[..., j:_end(j, 2 + extra_shifts)] for j in range(3 + extra_shifts)], 1)
            return torch.cat([x] * g.l1_in, 1) if g.l1_in > 1 else x

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.first_input(self.features(x))
            for i, conv in enumerate(self.convs):
                x = torch.relu(conv(x))
                if i == 2:
                    x = F.max_pool2d(x, 3, stride=2, padding=1)
            t = 3 if g.time_last else 2
            x = (self.lin(x) * self.sof(x).softmax(t)).sum(t)  # (B, C or P, C)
            x = x[:, :c] if g.pad_head else x
            x = torch.cat([x, torch.bmm(x, x.transpose(1, 2))], 2)
            return self.adv(x.flatten(1))

    return View().eval()


def _front_end(view: Any) -> Any:
    from torch import nn

    class FrontEnd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.view = view

        def forward(self, x: Any) -> Any:
            return self.view.first_input(self.view.features(x))

    return FrontEnd().eval()


# ---------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Variant:
    name: str
    graph: str
    precision: str = "int8"  # int8 | float
    quant: dict[str, Any] = field(default_factory=dict)  # activations, per_channel, float_ops, format, exclude
    session: dict[str, Any] = field(default_factory=dict)  # level, disabled, config
    note: str = ""


GRAPHS: dict[str, Graph] = {
    "plain": Graph(),
    "pad16": Graph(pad=16, l1_in=4),
    "time-last": Graph(time_last=True),
    "pad16+tl": Graph(pad=16, l1_in=4, time_last=True),
    "pad16+tl+shift3": Graph(pad=16, l1="shift3", l1_in=4, time_last=True),
    "pad16+tl+im2col": Graph(pad=16, l1="im2col", l1_in=12, time_last=True),
    "best": Graph(pad=16, l1="shift3", l1_in=4, time_last=True, pad_head=True, fold_log_scale=True),
    "best+merged-stft": Graph(pad=16, l1="shift3", l1_in=4, time_last=True, pad_head=True, fold_log_scale=True,
                              merged_stft=True),
}


def _variants() -> list[Variant]:
    v = [Variant(TORCH, "plain", "torch")]
    for g in GRAPHS:
        v += [Variant(f"float {g}", g, "float"), Variant(f"int8 {g}", g)]
    for g in ("plain", "best"):
        v += [
            Variant(f"int8 {g}, int8 activations", g, quant={"activations": "int8"}),
            Variant(f"int8 {g}, per-tensor weights", g, quant={"per_channel": False}),
            Variant(f"int8 {g}, QOperator", g, quant={"format": "qoperator"}),
            Variant(f"int8 {g}, NHWC transformer off", g, session={"disabled": ["NhwcTransformer"]}),
            Variant(f"int8 {g}, opt level EXTENDED", g, session={"level": "extended"}),
            Variant(f"int8 {g}, disable_quant_qdq", g, session={"config": {"session.disable_quant_qdq": "1"}}),
        ]
    v += [
        Variant(f"float {LIBRARY_FAST}", LIBRARY_FAST, "float"),
        Variant(f"int8 {LIBRARY_FAST}, head float", LIBRARY_FAST, quant={"float_ops": ["frontend", "softmax", "head"]}),
        Variant("int8 best, first conv float", "best", quant={"exclude_first_conv": True}),
        Variant("int8 best, sof conv int8 (softmax float)", "best", quant={"sof_int8": True}),
        Variant("int8 best, head float", "best", quant={"float_ops": ["frontend", "softmax", "head"]}),
        Variant("int8 best, sof conv int8, head float", "best",
                quant={"sof_int8": True, "float_ops": ["frontend", "head"]}),
        Variant("int8 best, quant_pre_process", "best", quant={"pre_process": True}),
        Variant("int8 best, quant_pre_process + short names", "best", quant={"pre_process": True, "short_names": True}),
        Variant("int8 plain, short names", "plain", quant={"short_names": True}),
        Variant("float best, opt level EXTENDED", "best", "float", session={"level": "extended"}),
    ]
    return v


# ---------------------------------------------------------------------------------------------
# Building artefacts
# ---------------------------------------------------------------------------------------------

def _structural_groups(graph: Any) -> dict[str, set[str]]:
    """A Wav2Small's parts inferred from the graph's shape (the exporter's rule before models named their
    parts; this script's own views name none, so it keeps the inference).

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


def _quantise_direct(src: Path, dst: Path, cal: np.ndarray, q: dict[str, Any]) -> None:
    """onnxruntime.quantization with the library's settings, plus format / node exclusions it cannot express."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from edgeser.export.onnx import _Reader

    graph = onnx.load(str(src)).graph
    groups = _structural_groups(graph)
    float_ops = q.get("float_ops", ["frontend"] if q.get("sof_int8") else ["frontend", "softmax"])
    keep = set().union(*(groups[k] for k in float_ops))
    if q.get("sof_int8"):
        keep |= {n.name for n in graph.node if n.op_type in ("Softmax", "Mul") and n.name in groups["softmax"]}
    if q.get("exclude_first_conv"):
        keep |= {next(n.name for n in graph.node if n.op_type == "Conv" and n.name not in groups["frontend"])}
    nodes = sorted(set().union(*groups.values()) - keep)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            quantize_static(
                str(src), str(dst), _Reader(cal),
                quant_format=QuantFormat.QOperator if q.get("format") == "qoperator" else QuantFormat.QDQ,
                activation_type=QuantType.QInt8 if q.get("activations") == "int8" else QuantType.QUInt8,
                weight_type=QuantType.QInt8, per_channel=q.get("per_channel", True), reduce_range=False,
                nodes_to_quantize=nodes, calibrate_method=CalibrationMethod.MinMax,
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            )
    finally:
        root.setLevel(level)


def _build(v: Variant, floats: dict[str, Path], tmp: Path, cal: np.ndarray) -> Path:
    from edgeser.export import Artefact
    from edgeser.export.onnx import _strip, quantise
    from edgeser.runtime.engine import InputSpec

    src = floats[v.graph]
    if v.precision == "float":
        return src
    key = json.dumps(v.quant, sort_keys=True)
    out = tmp / f"q_{v.graph}_{abs(hash(key))}"
    if (out / "model.int8.onnx").exists():
        return out / "model.int8.onnx"
    out.mkdir()
    q = dict(v.quant)
    if q.pop("pre_process", False):
        src = _pre_process(src, out / "pre.onnx", cal.shape[1])
    short = q.pop("short_names", False)
    if set(q) <= {"activations", "per_channel", "float_ops"}:  # the library's path (reduce_range auto, metadata)
        rec = _recipe(**{f"quantise.{k}": val for k, val in q.items()})
        dst = quantise(Artefact("float", src, InputSpec(window_samples=cal.shape[1]), {}), out, cal, recipe=rec)[0].path
    else:
        dst = out / "model.int8.onnx"
        _quantise_direct(src, dst, cal, q)
        _strip(dst)
    return _short_names(dst) if short else dst


def _pre_process(src: Path, dst: Path, window: int) -> Path:
    """onnxruntime's quant_pre_process (symbolic shapes + basic graph optimisation: folds shape arithmetic)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgeser.export.onnx import set_metadata
    from edgeser.runtime.engine import InputSpec

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        quant_pre_process(str(src), str(dst))
    set_metadata(dst, InputSpec(window_samples=window))
    return dst


def _short_names(path: Path) -> Path:
    """Rename every internal tensor to ``t<i>`` (graph inputs and outputs keep theirs), in place: smaller file."""
    import onnx

    model = onnx.load(str(path))
    g = model.graph
    keep = {i.name for i in g.input} | {o.name for o in g.output}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        return names.setdefault(name, f"t{len(names)}")

    for init in g.initializer:
        init.name = short(init.name)
    for n in g.node:
        n.input[:] = [short(i) for i in n.input]
        n.output[:] = [short(o) for o in n.output]
    del g.value_info[:]
    onnx.save(model, str(path))
    return path


def _export_graphs(student: Any, tmp: Path, window: int) -> tuple[dict[str, Path], dict[str, Any], dict[str, Path]]:
    from edgeser.export.onnx import export
    from edgeser.runtime.engine import InputSpec

    spec = InputSpec(window_samples=window)
    rec = _recipe(**({"export.layout": "plain"} if _has_layout() else {}))  # this script builds its own views
    floats, views, fronts = {}, {}, {}
    for name, g in GRAPHS.items():
        view = student if name == "plain" else _export_view(student, g)
        floats[name] = export(view, tmp / f"float_{name}.onnx", recipe=rec, spec=spec).path
        views[name] = view
        fe = _front_end(_export_view(student, g))
        fronts[name] = _export_front(fe, tmp / f"front_{name}.onnx")
    if _has_layout() and hasattr(student, "export_view"):  # the library's own export.layout = "fast"
        floats[LIBRARY_FAST] = export(student, tmp / "float_library.onnx", recipe=_recipe(**{"export.layout": "fast"}),
                                      spec=spec).path
        views[LIBRARY_FAST] = student.export_view()
    return floats, views, fronts


def _recipe(**overrides: Any) -> Any:
    """The rpi recipe with float_ops pinned to frontend + softmax (the variants name their own), plus overrides."""
    from edgeser.recipe import load_recipe

    return load_recipe("rpi", **{"quantise.float_ops": ["frontend", "softmax"], **overrides})


def _has_layout() -> bool:
    from edgeser.recipe import ExportConfig

    return "layout" in ExportConfig.__dataclass_fields__


def _export_front(module: Any, path: Path) -> Path:
    import torch

    x = torch.zeros(1, 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), str(path), input_names=["waveform"], output_names=["logmel"],
                          dynamic_axes={"waveform": {0: "batch", 1: "samples"}}, opset_version=17, dynamo=False)
    return path


# ---------------------------------------------------------------------------------------------
# Running and timing
# ---------------------------------------------------------------------------------------------

def _session(path: Path, s: dict[str, Any], *, profile: str | None = None) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if s.get("level") == "extended":
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    for k, val in s.get("config", {}).items():
        so.add_session_config_entry(k, val)
    if profile:
        so.enable_profiling = True
        so.profile_file_prefix = profile
    kw = {"disabled_optimizers": s["disabled"]} if s.get("disabled") else {}
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"], **kw)


def _interleaved(fns: dict[str, Callable[[np.ndarray], Any]], x: np.ndarray, rounds: int,
                 block: int = BLOCK) -> dict[str, tuple[float, float]]:
    """Median and 10th percentile of thread CPU ms per function.

    Each round runs every function ``block`` times in a row (the first run of a block is discarded, so
    each timed run finds its own weights and buffers in cache, as a device running one model would),
    functions in turn, order reversed every round, so slow drifts of a shared machine hit all alike.
    """
    for f in fns.values():
        f(x)
    cpu: dict[str, list[float]] = defaultdict(list)
    names = list(fns)
    for r in range(rounds):
        for k in (names if r % 2 == 0 else names[::-1]):
            for i in range(block):
                c0 = time.thread_time()
                fns[k](x)
                if i:
                    cpu[k].append((time.thread_time() - c0) * 1000)
    return {k: (statistics.median(cpu[k]), float(np.percentile(cpu[k], 10))) for k in names}


def _outputs(path: Path, s: dict[str, Any], windows: np.ndarray, batch: int = 8) -> np.ndarray:
    """Model outputs for many windows, in small batches through a short-lived session (bounded memory)."""
    sess = _session(path, s)
    return np.concatenate([sess.run(None, {"waveform": windows[i:i + batch]})[0]
                           for i in range(0, len(windows), batch)])


def _profile(path: Path, s: dict[str, Any], x: np.ndarray, runs: int, tmp: Path) -> dict[str, float]:
    """Per op type: the sum over nodes of each node's median kernel time (ms), from ORT's profiler."""
    sess = _session(path, s, profile=str(tmp / "prof"))
    for _ in range(runs):
        sess.run(None, {"waveform": x})
    events = json.loads(Path(sess.end_profiling()).read_text())
    per_node: dict[tuple[str, str], list[float]] = defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_node[(e["args"]["op_name"], e["name"])].append(e["dur"] / 1000)
    by_op: dict[str, float] = defaultdict(float)
    for (op, _), d in per_node.items():
        by_op[op] += statistics.median(d[3:] or d)
    return dict(by_op)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def _data(audio: str | None, window: int) -> tuple[np.ndarray, np.ndarray, str]:
    from edgeser import audio as audio_io
    from edgeser.build import collect_windows, split_windows
    from edgeser.defaults import calibration_list_path
    from edgeser.recipe import load_recipe

    source = audio or (str(EMODB) if EMODB.exists() else str(calibration_list_path()))
    wins = collect_windows(audio_io.list_audio(source), window)
    cal_idx, eval_idx = split_windows(wins, load_recipe("rpi"), source)
    return wins.data[cal_idx], wins.data[eval_idx], f"{source}: {len(cal_idx)} calibration / {len(eval_idx)} " \
        f"held-out windows ({wins.split_by}-disjoint)"


def _student(path: str | None, tmp: Path) -> tuple[Any, str]:
    from edgeser import models, testing
    from edgeser.defaults import default_student_path

    if path is None:
        try:
            path = str(default_student_path())
        except Exception:  # no embedded default yet: a tiny ridge-fitted student
            csv = testing.synth_corpus(tmp / "synth", speakers=4, clips=12)
            path = str(testing.tiny_student(tmp / "tiny.safetensors", csv))
    return models.load(path).eval(), path


def _parity(student: Any, views: dict[str, Any], x: np.ndarray) -> dict[str, float]:
    import torch

    with torch.no_grad():
        xt = torch.from_numpy(x)
        ref = student(xt)
        return {k: float((v(xt) - ref).abs().max()) for k, v in views.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--student", help="student .safetensors (default: the embedded default, else a tiny one)")
    p.add_argument("--audio", help="audio folder or list (default: EmoDB if present, else the calibration set)")
    p.add_argument("--rounds", type=int, default=16, help=f"timing rounds at 4 s, each {BLOCK - 1} timed runs "
                   "per variant (1 s gets 3x as many)")
    p.add_argument("--only", help="semicolon-separated variant names to time (default: all)")
    p.add_argument("--profile", action="store_true", help="also print per-op-type time from ORT's profiler")
    args = p.parse_args()

    import onnxruntime as ort
    import torch

    torch.set_num_threads(1)
    window = 32000
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        student, student_path = _student(args.student, tmp)
        cal, held, data_note = _data(args.audio, window)
        floats, views, fronts = _export_graphs(student, tmp, window)
        parity = _parity(student, views, held[:16])
        variants = [v for v in _variants() if (not args.only or v.name in args.only.split(";")) and v.graph in floats]
        paths = {v.name: _build(v, floats, tmp, cal) for v in variants if v.precision != "torch"}
        sessions = {v.name: _session(paths[v.name], v.session) for v in variants if v.precision != "torch"}
        ref_out = _outputs(floats["plain"], {}, held)
        fns: dict[str, Callable[[np.ndarray], Any]] = {}
        for v in variants:
            if v.precision == "torch":
                fns[v.name] = lambda x: student(torch.from_numpy(x))  # timed under torch.no_grad()
            else:
                fns[v.name] = (lambda s: (lambda x: s.run(None, {"waveform": x})))(sessions[v.name])
        fe = {f"front-end {g}": (lambda s: (lambda x: s.run(None, {"waveform": x})))(_session(fronts[g], {}))
              for g in ("plain", "best")}
        timings = {}
        for sec in SECONDS:
            x = (np.random.default_rng(sec).standard_normal((1, 16000 * sec)) * 0.1).astype(np.float32)
            with torch.no_grad():
                timings[sec] = _interleaved({**fns, **fe}, x, args.rounds * (3 if sec == 1 else 1))
        del sessions, fns, fe
        header = (f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
                  f"{sys.version.split()[0]}, onnxruntime {ort.__version__}, 1 thread; thread CPU time, median of "
                  f"{args.rounds * 3 * (BLOCK - 1)} (1 s) / {args.rounds * (BLOCK - 1)} (4 s) runs in interleaved "
                  f"blocks (10th percentile in brackets)\nstudent: {student_path}\ndata: {data_note}")
        _print(variants, timings, paths, held, ref_out, parity, header)
        if args.profile:
            _print_profiles(floats, paths, tmp)


def _print(variants: list[Variant], timings: dict[int, dict[str, tuple[float, float]]], paths: dict[str, Path],
           held: np.ndarray, ref_out: np.ndarray, parity: dict[str, float], header: str) -> None:
    cpu = {s: {k: v[0] for k, v in t.items()} for s, t in timings.items()}
    p10 = {s: {k: v[1] for k, v in t.items()} for s, t in timings.items()}

    def ratio(ref: str, name: str) -> str:
        return " / ".join(f"{cpu[s][ref] / cpu[s][name]:.2f}x" for s in SECONDS) if ref in cpu[1] else ""

    print(header)
    print("graph parity, max |view - torch| on 16 held-out windows: "
          + ", ".join(f"{k} {v:.1e}" for k, v in parity.items()) + "\n")
    print("| variant | 1 s ms | 4 s ms | vs float plain 1 s / 4 s | vs float of same graph 1 s / 4 s | "
          "vs torch 1 s / 4 s | CCC(int8, float) A / D / V | KB |")
    print("|---|---|---|---|---|---|---|---|")
    for v in variants:
        n = v.name
        row = [n, *(f"{cpu[s][n]:.2f} ({p10[s][n]:.2f})" for s in SECONDS),
               ratio("float plain", n), ratio(f"float {v.graph}", n), ratio(TORCH, n), "", ""]
        if n in paths:
            row[-2] = " / ".join(f"{c:.4f}" for c in _ccc(_outputs(paths[n], v.session, held), ref_out))
            row[-1] = f"{paths[n].stat().st_size / 1024:.1f}"
        print("| " + " | ".join(row) + " |")
    print("\n| front-end only (float: prenorm, STFT, mel, log, first-conv input) | 1 s ms | 4 s ms | "
          "share of float plain | share of int8 best |")
    print("|---|---|---|---|---|")
    for g in ("plain", "best"):
        k = f"front-end {g}"
        shares = [" / ".join(f"{cpu[s][k] / cpu[s][whole]:.0%}" for s in SECONDS) if whole in cpu[1] else ""
                  for whole in ("float plain", "int8 best")]
        print(f"| {k} | {cpu[1][k]:.2f} | {cpu[4][k]:.2f} | {shares[0]} | {shares[1]} |")


def _ccc(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from edgeser.metrics import ccc

    return ccc(x, y)


def _print_profiles(floats: dict[str, Path], paths: dict[str, Path], tmp: Path) -> None:
    chosen = {"float plain": floats["plain"], "int8 plain": paths.get("int8 plain"),
              "float best": floats["best"], "int8 best": paths.get("int8 best")}
    for sec in SECONDS:
        x = (np.random.default_rng(sec).standard_normal((1, 16000 * sec)) * 0.1).astype(np.float32)
        profs = {k: _profile(p, {}, x, 60, tmp) for k, p in chosen.items() if p is not None}
        ops = sorted({op for pr in profs.values() for op in pr},
                     key=lambda o: -max(pr.get(o, 0) for pr in profs.values()))
        print(f"\nORT profiler, {sec} s input: per op type, sum of per-node median kernel time (ms, wall)")
        print("| op | " + " | ".join(profs) + " |\n|---|" + "---|" * len(profs))
        for op in ops:
            print(f"| {op} | " + " | ".join(f"{pr.get(op, 0):.3f}" for pr in profs.values()) + " |")
        print("| **sum** | " + " | ".join(f"{sum(pr.values()):.3f}" for pr in profs.values()) + " |")


if __name__ == "__main__":
    main()
