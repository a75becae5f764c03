"""`edgeser predict` and the bundle runner: what runs is what the manifest lists, and bad input is one line."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from edgeser.cli import app
from edgeser.runtime.engine import open_model
from edgeser.runtime.predict import predict_blocks, predict_file, predict_signal
from edgeser.testing import tiny_bundle

cli = CliRunner()
SR = 16_000


@pytest.fixture
def bundle(tmp_path, teacher_onnx):
    return tiny_bundle(tmp_path / "bundle", model=teacher_onnx.read_bytes())


@pytest.fixture
def speech(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "speech.wav"
    sf.write(path, rng.uniform(-0.3, 0.3, int(2.5 * SR)).astype(np.float32), SR)
    return path


def _runner(bundle, *args):
    return subprocess.run([sys.executable, "-m", "runner", *map(str, args)], cwd=bundle, capture_output=True,
                          text=True, timeout=120)


def _one_line_error(text, *needles):
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    assert all(n in lines[0] for n in needles), text


def test_predict_refuses_a_bundle_whose_model_changed(bundle, speech):
    ok = cli.invoke(app, ["predict", str(bundle), str(speech)])
    assert ok.exit_code == 0, ok.output
    model = bundle / "model.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    result = cli.invoke(app, ["predict", str(bundle), str(speech)])
    assert result.exit_code == 6 and "changed: model.onnx" in result.output


def test_predict_never_loads_a_model_outside_the_bundle(bundle, speech, tmp_path):
    outside = tmp_path / "outside.onnx"
    outside.write_bytes((bundle / "model.onnx").read_bytes())
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["model"]["file"] = str(outside)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    result = cli.invoke(app, ["predict", str(bundle), str(speech)])
    assert result.exit_code == 6 and "not a file name inside the bundle" in result.output


@pytest.mark.parametrize("samples", [1, 160, 500])
def test_predict_short_audio_is_bad_input(bundle, tmp_path, samples):
    short = tmp_path / "short.wav"
    sf.write(short, np.full(samples, 0.25, np.float32), SR)
    result = cli.invoke(app, ["predict", str(bundle), str(short)])
    assert result.exit_code == 2 and "too short" in result.output and "short.wav" in result.output


def test_predict_output_must_not_replace_an_input(bundle, speech, tmp_path):
    before = speech.read_bytes()
    result = cli.invoke(app, ["predict", str(bundle), str(speech), "--csv", str(speech)])
    assert result.exit_code == 5 and "is also an input" in result.output
    assert speech.read_bytes() == before
    out = tmp_path / "out.csv"
    out.write_text("mine\n")
    result = cli.invoke(app, ["predict", str(bundle), str(speech), "--csv", str(out)])
    assert result.exit_code == 5 and "exists already" in result.output and out.read_text() == "mine\n"
    result = cli.invoke(app, ["predict", str(bundle), str(speech), "--csv", str(out), "--overwrite"])
    assert result.exit_code == 0 and out.read_text().startswith("file,window")


@pytest.mark.slow
def test_runner_refuses_bad_audio_and_bad_bundles_in_one_line(bundle, speech, tmp_path):
    ok = _runner(bundle, "--json", speech)
    assert ok.returncode == 0, ok.stderr
    assert np.isfinite(json.loads(ok.stdout)["valence"])
    silent, short = tmp_path / "silent.wav", tmp_path / "short.wav"
    sf.write(silent, np.zeros(SR, np.float32), SR)
    sf.write(short, np.full(160, 0.25, np.float32), SR)
    for path, words in ((silent, "silent"), (short, "too short")):
        run = _runner(bundle, path)
        assert run.returncode == 2
        _one_line_error(run.stderr, str(path), words)
    (bundle / "manifest.json").write_text("{ not json")
    run = _runner(bundle, speech)
    assert run.returncode == 6
    _one_line_error(run.stderr, "manifest.json is corrupt")


@pytest.mark.slow
def test_runner_refuses_a_changed_model(bundle, speech):
    model = bundle / "model.onnx"
    model.write_bytes(model.read_bytes()[:-1] + b"\1")
    run = _runner(bundle, speech)
    assert run.returncode == 6
    _one_line_error(run.stderr, "changed: model.onnx")
    assert _runner(bundle, "--check").returncode == 6


def test_streamed_file_prediction_equals_the_whole_signal(bundle, tmp_path, monkeypatch):
    import edgeser.runtime.audiofile as audiofile

    runner = open_model(bundle)
    rng = np.random.default_rng(3)
    win = runner.spec.window_samples
    for seconds in (0.5, 1.5 * win / SR, 1.5 * win / SR + 0.01, 7.3 * win / SR, 20.4 * win / SR):
        x = rng.uniform(-0.3, 0.3, int(seconds * SR)).astype(np.float32)
        path = tmp_path / "x.wav"
        sf.write(path, x, SR, subtype="FLOAT")
        whole = predict_signal(runner, x)
        monkeypatch.setattr(audiofile, "BLOCK_SECONDS", 0.37)
        streamed = predict_file(runner, path)
        assert np.array_equal(streamed.windows, whole.windows) and np.array_equal(streamed.starts_s, whole.starts_s)
        chunks = predict_blocks(runner, np.array_split(x, [1, 2, win - 1, win, 3 * win + 5]))
        assert np.array_equal(chunks.windows, whole.windows)
