"""CLI polish: every --help reads well at 80 and 120 columns, commands in a user's order, completion, and no
engine chatter around the results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from edgeser.cli import app
from edgeser.cli._app import COMMAND_ORDER

GROUP = typer.main.get_command(app)
COMMANDS = GROUP.list_commands(typer.Context(GROUP))


def _help(args: list[str], columns: int) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


def _options(command: typer.core.TyperCommand) -> list[str]:
    names = [name for p in command.params if p.param_type_name == "option" and not p.hidden
             for name in (*p.opts, *p.secondary_opts)]
    return names


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_shows_every_option_whole_and_no_bool_placeholder(command, columns):
    text = _help([command] if command else [], columns)
    assert "…" not in text and "<bool>" not in text
    assert max(len(line) for line in text.splitlines()) <= columns
    target = GROUP if not command else GROUP.get_command(typer.Context(GROUP), command)
    names = _options(target)
    assert command != "build" or {"--target", "--overwrite", "--json", "-q", "--quiet"} <= set(names)
    for name in [*names, "--help"]:
        assert f" {name}" in text or f"{name}," in text, (name, text)


def test_commands_are_listed_in_the_order_a_user_meets_them():
    assert COMMANDS[:6] == ["build", "predict", "verify", "live", "label", "distill"]
    assert set(COMMANDS) == set(COMMAND_ORDER)  # a new command gets its place in the order
    text = _help([], 80)
    listed = [line.split()[0] for line in text.split("Commands:")[1].splitlines() if line.startswith("  ") and
              not line.startswith("   ")]
    assert listed == COMMANDS


def test_flags_take_no_placeholder_and_values_a_clean_one():
    text = _help(["label"], 80)
    assert "  --overwrite " in text and "--overwrite BOOLEAN" not in text
    assert "--batch-size INTEGER" in text and "--cache PATH" in text and "--teacher TEXT" in text
    assert "--loss-weights FLOAT FLOAT FLOAT" in _help(["distill"], 80)


def test_a_flag_that_is_off_by_default_has_no_negative_form():
    """``--overwrite / --no-overwrite [default: no-overwrite]`` says nothing a plain ``--overwrite`` does not."""
    ctx = typer.Context(GROUP)
    for name in COMMANDS:
        for p in GROUP.get_command(ctx, name).params:
            if p.param_type_name == "option" and p.is_flag and p.secondary_opts:
                assert p.default is True, f"{name} {p.opts[0]}: off by default, yet has {p.secondary_opts[0]}"


def test_shell_completion_is_on():
    text = _help([], 80)
    assert "--install-completion" in text and "--show-completion" in text
    env = {**os.environ, "_EDGESER_COMPLETE": "complete_bash", "COMP_WORDS": "edgeser ev", "COMP_CWORD": "1"}
    run = subprocess.run([sys.executable, "-c", "from edgeser.cli import app; app(prog_name='edgeser')"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.stdout.split() == ["evaluate"], run.stdout + run.stderr


def _tiny_tflite(path: Path, window: int = 1600) -> Path:
    """A float TFLite model written with the schema alone: ``waveform`` (1, window) -> fully connected -> ``adv``."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    from edgeser.export import tflite_flatbuffer
    from edgeser.runtime.spec import MODEL_METADATA_KEY, InputSpec

    def buffer(values: object = None) -> object:
        b = schema.BufferT()
        if values is not None:
            b.data = np.frombuffer(np.asarray(values, np.float32).tobytes(), np.uint8)
        return b

    def tensor(name: str, shape: list[int], buf: int) -> object:
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, np.array(shape, np.int32), schema.TensorType.FLOAT32, buf
        return t

    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.FULLY_CONNECTED
    code.version = 1
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = schema.FullyConnectedOptionsT()
    graph = schema.SubGraphT()
    graph.tensors = [tensor("waveform", [1, window], 0), tensor("w", [3, window], 1), tensor("b", [3], 2),
                     tensor("adv", [1, 3], 0)]
    graph.inputs, graph.outputs, graph.operators = [0], [3], [op]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers = [buffer(), buffer(np.full((3, window), 1e-3)), buffer([0.2, 0.5, 0.8])]
    tflite_flatbuffer.set_metadata(model, {MODEL_METADATA_KEY: InputSpec(window_samples=window).to_json().encode()})
    path.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    return path


def test_predict_on_a_litert_model_prints_results_and_no_engine_notice(tmp_path, wav):
    """The engine announces its CPU delegate once per process, from C++: so a fresh process runs predict."""
    pytest.importorskip("ai_edge_litert", reason="needs ai-edge-litert: pip install 'edgeser[litert]'")
    model = _tiny_tflite(tmp_path / "fc.tflite")
    audio = wav(np.sin(np.arange(8000) / 5.0).astype(np.float32) * 0.3, name="speech.wav")
    run = subprocess.run([sys.executable, "-c", "from edgeser.cli import app; app()", "predict", "-m", str(model),
                          str(audio)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "COLUMNS": "100"})
    assert run.returncode == 0, run.stderr
    assert "XNNPACK" not in run.stdout + run.stderr and "INFO" not in run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split()[:2] == ["file", "arousal"] and lines[1].startswith(str(audio))
    assert run.stderr == ""


def test_engine_notices_are_dropped_and_anything_else_on_stderr_kept(capfd):
    from edgeser.runtime.litert import ENGINE_NOTICES, _without_notices

    with _without_notices():
        os.write(2, ENGINE_NOTICES[0] + b"\nERROR: a real problem\n")
        os.write(1, b"results\n")
    out, err = capfd.readouterr()
    assert err == "ERROR: a real problem\n" and out == "results\n"


@pytest.mark.parametrize("target", ["android", "coral"])
def test_a_tflite_target_without_the_tflite_extra_says_so_in_one_line(target, tmp_path):
    """The converter and the quantiser made unimportable, as in an install without ``edgeser[tflite]``."""
    blocked = "import sys; sys.modules['litert_torch'] = sys.modules['ai_edge_quantizer'] = None; "
    run = subprocess.run([sys.executable, "-c", blocked + "from edgeser.cli import app; app()", "build",
                          "--target", target, "--out", str(tmp_path / "out"), "-q"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == (f"error: target {target} builds a TFLite model, which needs litert-torch, "
                          "ai-edge-quantizer: pip install 'edgeser[tflite]'\n")
    assert list(tmp_path.iterdir()) == []  # refused before any work
