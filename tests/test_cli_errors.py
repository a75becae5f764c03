"""Bad input to the CLI: one line naming the file and the problem, a documented exit code, nothing written."""

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from edgeser.cli import app

cli = CliRunner()


def _build(tmp_path, **kw):
    args = ["build", "--quiet", "--out", str(tmp_path / "out")]
    for k, v in kw.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return cli.invoke(app, args)


def _nothing_written(tmp_path, before):
    assert {p.name for p in tmp_path.iterdir()} == before


def test_help_lists_commands():
    result = cli.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("build", "verify", "predict"):
        assert cmd in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["verify"], "error: Missing argument 'bundle'. (see 'edgeser verify --help')"),
    (["label"], "error: nothing to label: give AUDIO (files, folders, list files) or --manifest"),
    (["predict", "--model", "m.onnx", "a.wav", "--thread", "2"], "error: No such option: --thread"),
    (["lable", "x.wav"], "error: No such command 'lable'. Did you mean 'label'? (see 'edgeser --help')"),
    (["--bogus"], "error: No such option: --bogus (see 'edgeser --help')"),
    (["label", "a.wav", "--window-seconds", "1e9"],
     "error: Invalid value for '--window-seconds': Input should be less than or equal to 60 "
     "(see 'edgeser label --help')"),
])
def test_usage_errors_are_one_line_with_exit_code_2(args, message):
    result = cli.invoke(app, args)
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith(message), line


def test_error_messages_are_printed_as_they_are(tmp_path):
    model = tmp_path / "[/b] [bold]model.onnx"  # square brackets are text, not console markup
    result = cli.invoke(app, ["predict", "--model", str(model), str(tmp_path / "a.wav")])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {model}: model not found"


@pytest.mark.parametrize("kind", ["missing", "corrupt"])
def test_bad_student(tmp_path, kind, teacher_onnx, corpus):
    student = tmp_path / "s.safetensors"
    if kind == "corrupt":
        student.write_bytes(b"garbage" * 10)
    before = {p.name for p in tmp_path.iterdir()}
    result = _build(tmp_path, student=student, teacher=teacher_onnx, audio=corpus)
    assert result.exit_code == 2, result.output
    assert str(student) in result.output and len(result.output.strip().splitlines()) == 1
    _nothing_written(tmp_path, before)


def test_bad_teacher(tmp_path, student, corpus):
    teacher = tmp_path / "t.onnx"
    teacher.write_bytes(b"not onnx")
    result = _build(tmp_path, student=student, teacher=teacher, audio=corpus)
    assert result.exit_code == 2 and "not a loadable ONNX model" in result.output
    result = _build(tmp_path, student=student, teacher=tmp_path / "none.onnx", audio=corpus)
    assert result.exit_code == 2 and "teacher not found" in result.output
    assert not (tmp_path / "out").exists()


def test_too_few_calibration_windows(tmp_path, student, teacher_onnx, corpus):
    result = _build(tmp_path, student=student, teacher=teacher_onnx, audio=corpus)  # rpi asks for 48
    assert result.exit_code == 2
    assert "calibration windows available" in result.output and "asks for 48" in result.output
    assert not (tmp_path / "out").exists()


def test_corrupt_audio_named(tmp_path, student, teacher_onnx, corpus, small_recipe):
    folder = tmp_path / "audio"
    folder.mkdir()
    (folder / "broken.wav").write_bytes(b"RIFF1234WAVEjunk")
    result = _build(tmp_path, student=student, teacher=teacher_onnx, audio=folder, recipe=small_recipe)
    assert result.exit_code == 2 and "broken.wav" in result.output and "cannot read audio" in result.output


def test_unwritable_output(tmp_path, student, teacher_onnx, corpus, small_recipe):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = cli.invoke(app, ["build", "--quiet", "--student", str(student), "--teacher", str(teacher_onnx),
                              "--audio", str(corpus), "--recipe", str(small_recipe), "--out", str(blocker / "out")])
    assert result.exit_code == 5, result.output


def test_unknown_target():
    result = cli.invoke(app, ["build", "--target", "toaster", "--quiet"])
    assert result.exit_code == 2 and "unknown target 'toaster'" in result.output


def test_verify_missing_bundle(tmp_path):
    result = cli.invoke(app, ["verify", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "bundle not found" in result.output


@pytest.mark.parametrize(("line", "bad", "message"), [
    ("opset = 17", "opset = 3", "recipe key 'export.opset' must be between 13 and 23, got 3"),
    ("window_seconds = 2.0", "window_seconds = 1e9", "recipe key 'data.window_seconds' must be between 0.1 and 60"),
    ("window_seconds = 2.0", "window_seconds = inf", "recipe key 'data.window_seconds' must be between 0.1 and 60"),
])
def test_recipe_values_out_of_range_are_bad_input_before_any_work(tmp_path, line, bad, message):
    from edgeser.resources import recipes_dir

    recipe = tmp_path / "r.toml"
    recipe.write_text((recipes_dir() / "rpi.toml").read_text(encoding="utf-8").replace(line, bad), encoding="utf-8")
    before = {p.name for p in tmp_path.iterdir()}
    result = _build(tmp_path, recipe=recipe)
    assert result.exit_code == 2, result.output
    assert result.output.strip().startswith(f"error: {recipe}: {message}")
    assert len(result.output.strip().splitlines()) == 1
    _nothing_written(tmp_path, before)


# ---- a closed standard output (`... | head -1`) is not an error for the producer -----------------------

def _into_closed_pipe(cmd, *, keep_lines, cwd=None):
    """Run ``cmd`` with stdout into a real pipe whose reader keeps ``keep_lines`` lines, then closes it."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(cmd, stdout=write_fd, stderr=subprocess.PIPE, cwd=cwd,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:
        kept = [reader.readline() for _ in range(keep_lines)]
    stderr = proc.communicate(timeout=300)[1].decode()
    return proc.returncode, stderr, kept


def _many_files(tmp_path, n=400):
    """``n`` names for one 1-second clip, long enough that their lines overflow a pipe's 64 KiB buffer."""
    import numpy as np
    import soundfile as sf

    clip = tmp_path / "clip.wav"
    sf.write(clip, np.random.default_rng(0).uniform(-0.3, 0.3, 16_000).astype(np.float32), 16_000)
    names = []
    for i in range(n):
        names.append(tmp_path / f"{i:04d}-{'x' * 200}.wav")
        os.link(clip, names[-1])
    return names


EDGESER = [sys.executable, "-c", "from edgeser.cli import app; app(prog_name='edgeser')"]


@pytest.mark.slow
def test_predict_into_a_closed_pipe_stops_quietly(tmp_path, teacher_onnx):
    rc, stderr, kept = _into_closed_pipe([*EDGESER, "predict", "--model", str(teacher_onnx),
                                          *map(str, _many_files(tmp_path))], keep_lines=1)
    assert kept[0].startswith(b"file")
    assert rc == 0 and stderr == "", stderr


@pytest.mark.slow
def test_label_into_a_closed_pipe_stops_quietly(tmp_path, corpus, teacher_onnx):
    out = tmp_path / "labels.csv"
    rc, stderr, _ = _into_closed_pipe([*EDGESER, "label", str(corpus), "--teacher", str(teacher_onnx), "--out",
                                       str(out), "--window-seconds", "0.5"], keep_lines=0)
    assert rc == 0, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr and "BrokenPipe" not in stderr
    assert len(out.read_text().splitlines()) > 48  # the labels were written before the summary line


@pytest.mark.slow
def test_runner_into_a_closed_pipe_stops_quietly(tmp_path, teacher_onnx):
    from edgeser.testing import tiny_bundle

    bundle = tiny_bundle(tmp_path / "bundle", model=teacher_onnx.read_bytes())
    files = _many_files(tmp_path)
    rc, stderr, kept = _into_closed_pipe([sys.executable, "-m", "runner", *map(str, files)], keep_lines=1,
                                         cwd=bundle)
    assert kept[0].startswith(b"file")
    assert rc == 0 and stderr == "", stderr
