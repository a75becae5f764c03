"""Bad input to the CLI: one line naming the file and the problem, a documented exit code, nothing written."""

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
