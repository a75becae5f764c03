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
    ok = cli.invoke(app, ["predict", "--model", str(bundle), str(speech)])
    assert ok.exit_code == 0, ok.output
    model = bundle / "model.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    result = cli.invoke(app, ["predict", "--model", str(bundle), str(speech)])
    assert result.exit_code == 6 and "changed: model.onnx" in result.output


def test_predict_never_loads_a_model_outside_the_bundle(bundle, speech, tmp_path):
    outside = tmp_path / "outside.onnx"
    outside.write_bytes((bundle / "model.onnx").read_bytes())
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["model"]["file"] = str(outside)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    result = cli.invoke(app, ["predict", "--model", str(bundle), str(speech)])
    assert result.exit_code == 6 and "not a file name inside the bundle" in result.output


@pytest.mark.parametrize("samples", [1, 160, 500])
def test_predict_short_audio_is_bad_input(bundle, tmp_path, samples):
    short = tmp_path / "short.wav"
    sf.write(short, np.full(samples, 0.25, np.float32), SR)
    result = cli.invoke(app, ["predict", "--model", str(bundle), str(short)])
    assert result.exit_code == 2 and "too short" in result.output and "short.wav" in result.output


def test_predict_output_must_not_replace_an_input(bundle, speech, tmp_path):
    before = speech.read_bytes()
    result = cli.invoke(app, ["predict", "--model", str(bundle), str(speech), "--csv", str(speech)])
    assert result.exit_code == 5 and "is also an input" in result.output
    assert speech.read_bytes() == before
    out = tmp_path / "out.csv"
    out.write_text("mine\n")
    result = cli.invoke(app, ["predict", "--model", str(bundle), str(speech), "--csv", str(out)])
    assert result.exit_code == 5 and "exists already" in result.output and out.read_text() == "mine\n"
    result = cli.invoke(app, ["predict", "--model", str(bundle), str(speech), "--csv", str(out), "--overwrite"])
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


# --- batch use: inputs, formats, bad files ---------------------------------------------------------------------

def _predict(*args, **kwargs):
    return cli.invoke(app, ["predict", *map(str, args)], **kwargs)


def _clip(path, seconds=1.3, seed=1, rate=SR, subtype="FLOAT"):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, rng.uniform(-0.3, 0.3, int(seconds * rate)).astype(np.float32), rate, subtype=subtype)
    return path


def _rows(stdout):
    """The plain output's result lines: file name and its line."""
    lines = stdout.splitlines()
    assert lines[0].split() == ["file", "arousal", "dominance", "valence", "windows"], stdout
    return [ln for ln in lines[1:lines.index("")]]


def _mean(bundle, path):
    return predict_file(open_model(bundle), path).mean


def test_predict_without_a_model_uses_the_default_student(speech):
    from edgeser import load

    result = _predict(speech)
    assert result.exit_code == 0, result.output
    (row,) = _rows(result.stdout)
    expected = load().predict_file(speech)
    words = expected.bands
    assert row.split() == [str(speech), f"{expected.arousal:.3f}", words["arousal"], f"{expected.dominance:.3f}",
                           words["dominance"], f"{expected.valence:.3f}", words["valence"], "1"]
    assert "Values: 0..1, trained towards the teacher's scale" in result.stdout
    assert "Bands measured on wav2small.default.safetensors over EmoDB speakers 11, 14" in result.stdout
    assert "not measured on this model" not in result.stdout


def test_predict_json_lines_match_the_runner_plus_words(bundle, speech, tmp_path, capsys):
    from edgeser.runtime.bands import load_bands
    from edgeser.runtime.cli import main as runner_main

    long = _clip(tmp_path / "long.wav", seconds=3.6)
    result = _predict("--model", bundle, "--json", speech, long)
    assert result.exit_code == 0, result.output
    ours = [json.loads(line) for line in result.stdout.splitlines()]
    assert runner_main(["--json", str(speech), str(long)], bundle=bundle) == 0
    theirs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["windows"] for r in ours] == [3, 4]  # 1-s windows in the tiny bundle
    for mine, runner in zip(ours, theirs, strict=True):
        assert mine.pop("bands") == load_bands().words_for([runner[d] for d in ("arousal", "dominance", "valence")])
        assert mine == runner


def test_predict_per_window(bundle, tmp_path):
    long = _clip(tmp_path / "long.wav", seconds=3.6)
    result = _predict("--model", bundle, "--json", "--per-window", long)
    assert result.exit_code == 0, result.output
    entry = json.loads(result.stdout)
    pred = predict_file(open_model(bundle), long)
    assert [w["start_s"] for w in entry["per_window"]] == pytest.approx(list(pred.starts_s))
    assert [w["valence"] for w in entry["per_window"]] == pytest.approx([float(v) for v in pred.windows[:, 2]])
    plain = _predict("--model", bundle, "--per-window", long)
    assert plain.exit_code == 0, plain.output
    row, *windows = _rows(plain.stdout)
    assert row.startswith(str(long)) and [w.split()[0] for w in windows] == ["@", "@", "@", "@"]
    assert [float(w.split()[1]) for w in windows] == pytest.approx(list(pred.starts_s))


def test_predict_a_folder_and_list_files(bundle, tmp_path):
    a = _clip(tmp_path / "in" / "a.wav", seed=1)
    b = _clip(tmp_path / "in" / "deeper" / "b.flac", seed=2, subtype="PCM_16")
    (tmp_path / "in" / "notes.md").write_text("not audio")
    result = _predict("--model", bundle, tmp_path / "in")
    assert result.exit_code == 0, result.output
    assert [r.split()[0] for r in _rows(result.stdout)] == [str(a), str(b)]
    for value, path in zip(_rows(result.stdout), (a, b), strict=True):
        assert float(value.split()[1]) == pytest.approx(float(_mean(bundle, path)[0]), abs=5e-4)
    listing = tmp_path / "list.txt"
    listing.write_text("in/deeper/b.flac\n")
    table = tmp_path / "list.csv"
    table.write_text("file,speaker\nin/a.wav,s1\n")
    result = _predict("--model", bundle, "--json", listing, table)
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["file"] for x in result.stdout.splitlines()] == [str(b), str(a)]


def test_a_bad_file_is_reported_and_skipped_and_the_exit_code_is_2(bundle, tmp_path):
    good1, good2 = _clip(tmp_path / "good1.wav", seed=1), _clip(tmp_path / "good2.wav", seed=2)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR, np.float32), SR)
    out = tmp_path / "out.csv"
    result = _predict("--model", bundle, good1, silent, tmp_path / "missing.wav", good2, "--csv", out)
    assert result.exit_code == 2, result.output
    assert [r.split()[0] for r in _rows(result.stdout)] == [str(good1), str(good2)]
    errors = result.stderr.splitlines()
    assert errors == [f"error: {silent}: audio is silent (peak below -100 dBFS)",
                      f"error: {tmp_path / 'missing.wav'}: audio file not found",
                      "error: 2 of 4 inputs could not be read and were skipped (see above)"]
    files = [r.split(",")[0] for r in out.read_text().splitlines()[1:]]
    assert sorted(set(files)) == [str(good1), str(good2)]  # the good files' rows are written


def test_strict_stops_at_the_first_bad_file(bundle, tmp_path):
    good1, good2 = _clip(tmp_path / "good1.wav", seed=1), _clip(tmp_path / "good2.wav", seed=2)
    out = tmp_path / "out.csv"
    result = _predict("--model", bundle, "--strict", "--json", good1, tmp_path / "missing.wav", good2, "--csv", out)
    assert result.exit_code == 2, result.output
    assert [json.loads(x)["file"] for x in result.stdout.splitlines()] == [str(good1)]
    assert result.stderr.splitlines() == [f"error: {tmp_path / 'missing.wav'}: audio file not found"]
    assert not out.exists()  # nothing half-written


@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_predict_reads_audio_bytes_from_stdin(bundle, tmp_path, fmt):
    path = _clip(tmp_path / f"x.{fmt.lower()}", seconds=2.4, rate=22_050, subtype="PCM_16")
    result = _predict("--model", bundle, "--json", "-", input=path.read_bytes())
    assert result.exit_code == 0, result.output
    entry = json.loads(result.stdout)
    assert entry["file"] == "<stdin>"
    assert [entry[d] for d in ("arousal", "dominance", "valence")] == pytest.approx(
        [float(v) for v in _mean(bundle, path)], abs=1e-6)


def test_stdin_refusals_are_one_line(bundle, speech, monkeypatch):
    import edgeser.cli.predict as predict_cli

    result = _predict("--model", bundle, "-", input=b"RIFF not really a wav file")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0].startswith("error: <stdin>: cannot read audio (")
    monkeypatch.setattr(predict_cli, "MAX_STDIN_BYTES", 1000)
    result = _predict("--model", bundle, "-", input=speech.read_bytes())
    assert result.exit_code == 2
    assert "error: <stdin>: more than 0 MiB on stdin: save the audio to a file" in result.stderr
    result = _predict("--model", bundle, "-", "-", input=b"")
    assert result.exit_code == 2 and result.stderr.strip() == "error: stdin (-) can be read only once"


def test_predict_with_a_bundle_archive(bundle, speech, tmp_path, monkeypatch):
    import tempfile

    from edgeser.bundle import archive

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    tar = archive(bundle, tmp_path / "edgeser-rpi.tar.gz", arcname="edgeser-rpi")
    result = _predict("--model", tar, "--json", speech)
    assert result.exit_code == 0, result.output
    entry = json.loads(result.stdout)
    assert entry["valence"] == pytest.approx(float(_mean(bundle, speech)[2]), abs=1e-6)
    assert list(scratch.iterdir()) == []  # the unpacked bundle is gone
    model = bundle / "model.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    bad = archive(bundle, tmp_path / "changed.tar.gz", arcname="edgeser-rpi")
    result = _predict("--model", bad, speech)
    assert result.exit_code == 6, result.output
    assert result.stderr.startswith(f"error: {bad}: bundle does not match its manifest")
    assert "model.onnx" in result.stderr
    assert list(scratch.iterdir()) == []


def test_a_model_among_the_inputs_gets_a_hint(bundle, speech, teacher_onnx):
    for model in (bundle, teacher_onnx):
        result = _predict(model, speech)
        assert result.exit_code == 2
        assert result.output.strip() == (f"error: {model}: this is a model, not audio: pass it as --model {model} "
                                          "(edgeser predict --model MODEL FILE...)")
    result = _predict()
    assert result.exit_code == 2
    assert "give audio files, folders, list files (.csv, .txt) or - for stdin" in result.output


def test_the_csv_format_is_unchanged(bundle, tmp_path):
    long = _clip(tmp_path / "long.wav", seconds=2.6)
    out = tmp_path / "out.csv"
    result = _predict("--model", bundle, long, "--csv", out)
    assert result.exit_code == 0, result.output
    pred = predict_file(open_model(bundle), long)
    lines = out.read_text().splitlines()
    assert lines[0] == "file,window,start_s,arousal,dominance,valence"
    expected = [f"{long},{i},{s:.3f}," + ",".join(f"{float(x):.6f}" for x in w)
                for i, (s, w) in enumerate(zip(pred.starts_s, pred.windows, strict=True))]
    expected.append(f"{long},mean,," + ",".join(f"{float(x):.6f}" for x in pred.mean))
    assert lines[1:] == expected


def test_on_a_terminal_predict_prints_a_table_with_the_words_and_the_footnote(bundle, speech):
    import io

    from rich.console import Console

    from edgeser.api import load
    from edgeser.cli.predict_output import open_output

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=160, color_system=None)
    with load(bundle) as model:
        out = open_output(console, model, json_lines=False, per_window=False)
        result = model.predict_file(speech)
        out.add(str(speech), result)
        out.close()
    text = buffer.getvalue()
    assert f"edgeser predict · {bundle.name}" in text and "┃ file" in text
    row = next(line for line in text.splitlines() if str(speech) in line)
    for dim in ("arousal", "dominance", "valence"):
        assert f"{getattr(result, dim):.3f} {result.bands[dim]}" in row
    assert "Words: arousal" in text and "calm <= " in text
    assert "The bands were not measured on this model (bundle)" in text  # a bundle of another model


def test_a_manifest_input_spec_that_differs_from_the_model_is_refused(tmp_path):
    """The manifest's input spec is checked against the spec the model file carries itself."""
    import torch

    from edgeser.export.onnx import export
    from edgeser.models import create_model
    from edgeser.recipe import load_recipe
    from edgeser.runtime.spec import InputSpec

    torch.manual_seed(0)
    art = export(create_model("wav2small"), tmp_path / "m.onnx", recipe=load_recipe("rpi"),
                 spec=InputSpec(window_samples=SR))
    bundle = tiny_bundle(tmp_path / "b", model=art.path.read_bytes())
    assert open_model(bundle).spec.window_samples == SR
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["input"]["sampling_rate"] = 8_000
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="input spec differs from the model's own metadata: sampling_rate"):
        open_model(bundle)
