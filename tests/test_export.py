import numpy as np
import onnx
import pytest
import torch

from edgeser import models
from edgeser.errors import ExportCheckError, InputError
from edgeser.export.onnx import export, node_groups, quantise
from edgeser.metrics import ccc
from edgeser.recipe import load_recipe
from edgeser.runtime import open_model
from edgeser.runtime.engine import InputSpec

SPEC = InputSpec(window_samples=16000)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("exp") / "model.onnx"
    return export(models.create_model("wav2small"), path, recipe=load_recipe("rpi"), spec=SPEC)


def test_export_names_axes_and_metadata(exported):
    g = onnx.load(str(exported.path)).graph
    assert [i.name for i in g.input] == ["waveform"] and [o.name for o in g.output] == ["adv"]
    dims = g.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_param  # dynamic batch and length
    runner = open_model(exported.path)
    assert runner.spec == SPEC and runner.backend == "onnx"
    assert exported.details["parity_max_abs_diff"] < 1e-4
    assert not any(n.op_type == "Identity" for n in g.node)


def test_runner_matches_torch_on_any_length(exported):
    runner = open_model(exported.path)
    x = np.random.default_rng(1).standard_normal(23456).astype(np.float32) * 0.1
    out = runner(x)
    assert out.shape == (3,) and np.isfinite(out).all()
    assert np.allclose(runner.predict(np.stack([x, x])), out, atol=1e-6)


def test_node_groups_find_the_frontend_and_softmax(exported):
    graph = onnx.load(str(exported.path)).graph
    groups = node_groups(graph)
    ops = {n.name: n.op_type for n in graph.node}
    assert {"Log", "MatMul", "ReduceMean"} <= {ops[n] for n in groups["frontend"]}
    assert sorted(ops[n] for n in groups["softmax"]) == ["Conv", "Mul", "Softmax"]  # sof logits, softmax, product
    assert {ops[n] for n in groups["head"]} >= {"Gemm", "Concat"}
    assert sum(ops[n] == "Conv" for n in groups["body"]) == 8  # l1..l7 + lin


def test_quantise_runs_body_in_int8_and_keeps_frontend_float(exported, tmp_path):
    cal = np.random.default_rng(0).standard_normal((8, 16000)).astype(np.float32) * 0.1
    (art,) = quantise(exported, tmp_path, cal, recipe=load_recipe("rpi", **{"quantise.reduce_range": "false"}))
    census = {c["op"]: c for c in art.details["census"]}
    assert census["Conv"]["int8"] == 8 and census["Conv"]["float"] == 2  # the STFT conv and the sof logits stay float
    assert census["Log"]["int8"] == 0 and census["Softmax"]["int8"] == 0
    assert art.details["reduce_range"] is False and len(art.details["selection"]) == 1
    assert open_model(art.path).spec == SPEC
    assert art.path.stat().st_size < exported.path.stat().st_size


def _head_bias(path):
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {i.name: i for i in graph.initializer}
    head = next(n for n in graph.node if graph.output[0].name in n.output)
    return numpy_helper.to_array(inits[head.input[2]])


def test_quantise_moves_the_head_bias_by_the_calibration_offset(exported, tmp_path):
    cal = np.random.default_rng(0).standard_normal((8, 16000)).astype(np.float32) * 0.1
    (art,) = quantise(exported, tmp_path, cal, recipe=load_recipe("rpi", **{"quantise.reduce_range": "false"}))
    shift = np.array(art.details["output_bias_correction"], dtype=np.float32)
    assert shift.shape == (3,) and np.any(shift != 0)
    np.testing.assert_allclose(_head_bias(art.path) - _head_bias(exported.path), shift, atol=1e-7)
    q, f = open_model(art.path).predict(cal), open_model(exported.path).predict(cal)
    np.testing.assert_allclose((f - q).mean(0), 0.0, atol=1e-5)  # no mean offset left on the calibration windows


def test_a_softmax_head_is_head_not_attention_and_takes_the_bias_correction(student, tmp_path):
    from edgeser.testing import with_softmax_head

    model = with_softmax_head(models.load(student).eval())
    cal = np.random.default_rng(0).standard_normal((8, 16000)).astype(np.float32) * 0.1
    (tmp_path / "f").mkdir()
    art = export(model, tmp_path / "f" / "model.onnx", recipe=load_recipe("rpi"), spec=SPEC)
    graph = onnx.load(str(art.path)).graph
    ops = {n.name: n.op_type for n in graph.node}
    groups = node_groups(graph)
    head = [ops[n] for n in groups["head"]]
    assert head.count("Gemm") == 2 and head.count("Softmax") == 1
    assert [ops[n] for n in groups["softmax"]].count("Softmax") == 1  # the attention's, over time
    assert sum(op == "Softmax" for op in ops.values()) == 2
    (q,) = quantise(art, tmp_path, cal, recipe=load_recipe("rpi", **{"quantise.reduce_range": "false"}))
    shift = np.array(q.details["output_bias_correction"], dtype=np.float32)
    np.testing.assert_allclose(_head_bias(q.path) - _head_bias(art.path), shift, atol=1e-7)
    out = open_model(q.path).predict(cal)
    np.testing.assert_allclose((open_model(art.path).predict(cal) - out).mean(0), 0.0, atol=1e-5)


def test_speech_statistics_stay_float_with_the_head_on_rpi(stats_student, corpus, tmp_path):
    from edgeser.audio import list_audio, load

    model = models.load(stats_student).eval()
    clips = np.stack([load(it.path) for it in list_audio(corpus)])
    cal, held_out = clips[::2], clips[1::2]
    (tmp_path / "f").mkdir()
    art = export(model, tmp_path / "f" / "model.onnx", recipe=load_recipe("rpi"), spec=SPEC)
    graph = onnx.load(str(art.path)).graph
    ops = {n.name: n.op_type for n in graph.node}
    groups = node_groups(graph)
    assert [ops[n] for n in groups["head"]].count("Sigmoid") == 1  # the speech weights, computed after the pooling
    assert not any(ops[n] in ("Sigmoid", "Exp", "Relu", "BatchNormalization") and n in groups["softmax"]
                   for n in ops)
    assert [ops[n] for n in groups["softmax"]].count("Softmax") == 1  # only the attention's
    assert "Sigmoid" not in [ops[n] for n in groups["body"]]
    (q,) = quantise(art, tmp_path, cal, recipe=load_recipe("rpi", **{"quantise.reduce_range": "false"}))
    graph = onnx.load(str(q.path)).graph
    quantised = {i for n in graph.node if n.op_type == "DequantizeLinear" for i in n.output}
    sigmoid = next(n for n in graph.node if n.op_type == "Sigmoid")
    assert not set(sigmoid.input) & quantised  # the statistics run in float
    with torch.no_grad():
        ref = model(torch.from_numpy(held_out)).numpy()
    assert np.abs(open_model(art.path).predict(held_out) - ref).max() < 1e-4
    assert min(ccc(open_model(q.path).predict(held_out), ref)) > 0.9


def test_a_hidden_relu_head_exports_and_takes_the_bias_correction(student, tmp_path):
    from edgeser.testing import with_relu_head

    linear = models.load(student).eval()
    model = with_relu_head(linear)
    cal = np.random.default_rng(0).standard_normal((8, 16000)).astype(np.float32) * 0.1
    with torch.no_grad():
        assert torch.allclose(model(torch.from_numpy(cal)), linear(torch.from_numpy(cal)), atol=1e-6)
    (tmp_path / "f").mkdir()
    art = export(model, tmp_path / "f" / "model.onnx", recipe=load_recipe("rpi"), spec=SPEC)
    graph = onnx.load(str(art.path)).graph
    ops = {n.name: n.op_type for n in graph.node}
    head = [ops[n] for n in node_groups(graph)["head"]]
    assert head.count("Gemm") == 2 and "Relu" in head
    (q,) = quantise(art, tmp_path, cal, recipe=load_recipe("rpi", **{"quantise.reduce_range": "false"}))
    shift = np.array(q.details["output_bias_correction"], dtype=np.float32)
    np.testing.assert_allclose(_head_bias(q.path) - _head_bias(art.path), shift, atol=1e-7)  # the last Gemm's bias
    out = open_model(q.path).predict(cal)
    np.testing.assert_allclose((open_model(art.path).predict(cal) - out).mean(0), 0.0, atol=1e-5)


class _LengthDependent(torch.nn.Module):
    """Traced once at one length; Python control flow makes other lengths disagree with the export."""

    arch = "test"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x[:, :3] if x.shape[1] > 10000 else -x[:, :3]
        return y


def test_export_check_fails_past_tolerance(tmp_path):
    with pytest.raises(ExportCheckError, match="differs from torch") as err:
        export(_LengthDependent(), tmp_path / "m.onnx", recipe=load_recipe("rpi"), spec=SPEC)
    assert err.value.exit_code == 4


@pytest.mark.parametrize(("name", "config"), [("wav2small", {}), ("wav2small.wide", {}),
                                              ("wav2small", {"n_fft": 512, "hop_length": 256}),
                                              ("wav2small", {"head_hidden": 8}),
                                              ("wav2small", {"head_hidden": 8, "head_softmax": 1}),
                                              ("wav2small", {"n_fft": 512, "hop_length": 256, "mel_bands": 41}),
                                              ("wav2small", {"n_fft": 512, "hop_length": 256, "head_hidden": 8,
                                                             "head_softmax": 1, "shape_stats": 1})])
@pytest.mark.parametrize("layout", ["fast", "plain"])
def test_export_view_computes_the_same_function(name, config, layout):
    from edgeser.models.parts import view_parts

    torch.manual_seed(0)
    model = models.create_model(name, **config).eval()
    with torch.no_grad():
        for m in model.modules():  # batch-norm statistics away from the identity, so folding is exercised
            if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        x = torch.randn(2, 23457) * 0.1  # an odd length: the frame count is odd too
        view = model.export_view(layout)
        assert torch.allclose(view(x), model(x), atol=1e-5)
    assert view.layout == layout and view_parts(view) == ("frontend", "body", "softmax", "head")
    assert set(view_parts(view)) == set(model.quantisable_parts())


def test_an_unknown_layout_is_an_input_error():
    with pytest.raises(InputError, match="unknown export layout 'fastest'"):
        models.create_model("wav2small").export_view("fastest")


class _NoParts(torch.nn.Module):
    """A module that names no parts: its own convs and functions."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(torch.log(x.abs() + 1.0)[:, None, None, :].expand(-1, -1, 3, -1)))
        return y.mean((1, 2))[:, :3]


def test_a_module_that_names_no_parts_is_all_body(tmp_path):
    art = export(_NoParts().eval(), tmp_path / "m.onnx", recipe=load_recipe("rpi"), spec=SPEC)
    graph = onnx.load(str(art.path)).graph
    groups = node_groups(graph)
    assert groups["body"] == {n.name for n in graph.node}
    assert not any(groups[p] for p in ("frontend", "softmax", "head"))


def test_fast_layout_pads_the_int8_convs_to_16_channels(exported):
    graph = onnx.load(str(exported.path)).graph
    inits = {i.name: i for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv" and n.input[1] in inits and len(inits[n.input[1]].dims) == 4]
    assert exported.details["layout"] == "fast"
    assert [inits[c.input[1]].dims[0] for c in convs] == [16] * 9  # l1..l7, lin, sof
    assert list(inits[convs[0].input[1]].dims[1:]) == [4, 3, 1]  # four shifted copies, 3x1 kernel


def test_the_onnx_file_does_not_carry_the_stft_and_mel_tables(tmp_path):
    """A 512-point STFT is a 2 x 257 x 512 table (1 MB in float) plus a 257 x 26 mel filter bank: the export
    computes both in the graph, so the file holds only the learnt weights and small constants."""
    torch.manual_seed(0)
    model = models.create_model("wav2small", n_fft=512, hop_length=256).eval()
    art = export(model, tmp_path / "m.onnx", recipe=load_recipe("rpi"), spec=SPEC)
    stored = sum(int(np.prod(i.dims)) for i in onnx.load(str(art.path)).graph.initializer)
    tables = 2 * 257 * 512 + 257 * 26
    assert stored < 20_000 < tables and art.path.stat().st_size < 120_000  # tables alone: 1.1 MB
    assert art.details["parity_max_abs_diff"] < 1e-4


def test_a_checkpoint_with_other_stft_kernels_exports_them_as_stored(tmp_path):
    torch.manual_seed(0)
    model = models.create_model("wav2small").eval()
    with torch.no_grad():
        model.vgg7.spectrogram_extractor.conv_real.weight.mul_(0.9)  # not edgeser's DFT any more
    assert model.export_view().frontend.generated is None
    assert models.create_model("wav2small").export_view().frontend.generated is not None
    art = export(model, tmp_path / "m.onnx", recipe=load_recipe("rpi"), spec=SPEC)
    assert art.details["parity_max_abs_diff"] < 1e-4
