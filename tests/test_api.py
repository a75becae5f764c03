"""The Python API (`from edgeser import load`): bundles (folder and archive), ONNX files and students, through
the device runtime; the README's snippet runs as written."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edgeser import InputError, VerifyError, load
from edgeser.runtime.audiofile import resample
from edgeser.runtime.engine import open_model
from edgeser.runtime.predict import predict_file, predict_signal
from edgeser.testing import tiny_bundle

SR = 16_000
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def bundle(tmp_path, teacher_onnx):
    return tiny_bundle(tmp_path / "bundle", model=teacher_onnx.read_bytes())


def _signal(seconds=2.5, rate=SR, seed=0):
    return np.random.default_rng(seed).uniform(-0.3, 0.3, int(seconds * rate)).astype(np.float32)


def test_import_edgeser_does_not_import_the_api():
    code = "import sys, edgeser; print('edgeser.api' in sys.modules, 'edgeser.runners' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_predict_on_a_bundle_equals_the_device_runtime(bundle):
    x = _signal()
    with load(bundle) as model:
        result = model.predict(x, SR)
    expected = predict_signal(open_model(bundle), x)
    assert result.adv == pytest.approx(tuple(float(v) for v in expected.mean), abs=1e-7)
    assert result.windows == 3 and np.array_equal(result.per_window, expected.windows.astype(np.float64))
    assert list(result.starts_s) == [0.0, 1.0, 1.5]
    assert result.bands == model.bands.words_for(result.adv)
    assert set(result.bands.values()) <= {"calm", "neutral", "excited", "submissive", "dominant", "negative",
                                          "positive"}
    assert result.to_dict() == {"arousal": result.arousal, "dominance": result.dominance,
                                "valence": result.valence, "windows": 3, "bands": result.bands}
    assert repr(result).startswith(f"Result(arousal={result.arousal:.3f} {result.bands['arousal']}, ")
    assert not model.bands_measured  # the tiny bundle's student is not the default


def test_other_rates_are_resampled(bundle):
    x48 = _signal(rate=48_000, seed=2)
    model = load(bundle)
    assert model.predict(x48, 48_000).adv == model.predict(resample(x48, 48_000, SR), SR).adv
    assert model.predict(x48.astype(np.float64)[:, None], 48_000).adv == model.predict(x48, 48_000).adv


def test_files_and_bytes(bundle, tmp_path):
    path = tmp_path / "x.flac"
    sf.write(path, _signal(seed=3), 22_050)
    model = load(bundle)
    expected = predict_file(open_model(bundle), path).mean
    assert model.predict_file(path).adv == pytest.approx(tuple(map(float, expected)), abs=1e-7)
    assert model.predict_bytes(path.read_bytes()).adv == model.predict_file(path).adv
    with pytest.raises(InputError, match="audio file not found"):
        model.predict_file(tmp_path / "missing.wav")
    with pytest.raises(InputError, match=r"^upload\.wav: cannot read audio"):
        model.predict_bytes(b"not audio", name="upload.wav")


@pytest.mark.parametrize(("waveform", "rate", "error", "message"), [
    (np.zeros((2, 16_000), np.float32), SR, ValueError, r"must be mono, shape \(T,\), got shape \(2, 16000\)"),
    (np.ones(16_000, np.int16), SR, TypeError, "float samples in -1..1, got dtype int16"),
    (np.full(800, 0.1, np.float32), SR, ValueError, r"too short \(50 ms; at least 100 ms"),
    (np.full(16_000, np.nan, np.float32), SR, ValueError, "NaN or infinite"),
    (np.full(16_000, 5000.0, np.float32), SR, ValueError, "beyond 1000"),
    (np.zeros(16_000, np.float32), SR, ValueError, "silent"),
    (np.full(16_000, 0.1, np.float32), 16_000.0, TypeError, "sampling_rate must be an integer"),
    (np.full(16_000, 0.1, np.float32), True, TypeError, "sampling_rate must be an integer"),
    (np.full(16_000, 0.1, np.float32), 0, ValueError, "sampling_rate must be positive"),
])
def test_bad_waveforms_are_refused_with_a_reason(bundle, waveform, rate, error, message):
    with pytest.raises(error, match=message):
        load(bundle).predict(waveform, rate)


def test_stream_readings_do_not_depend_on_chunking(bundle):
    model = load(bundle)
    x = _signal(seconds=4.0, seed=4)
    whole = list(model.stream([x], SR, hop_s=0.5, vad=False))
    chunked = list(model.stream(np.array_split(x, [1, 777, 5000, 20_001]), SR, hop_s=0.5, vad=False))
    assert len(whole) == 8 and [r.end_s for r in whole] == [0.5 * (i + 1) for i in range(8)]
    assert [r.adv for r in chunked] == [r.adv for r in whole]
    assert whole[-1].adv == pytest.approx(tuple(float(v) for v in open_model(bundle)(x[-SR:])), abs=1e-6)
    x48 = _signal(seconds=2.0, rate=48_000, seed=5)
    readings = list(model.stream(np.array_split(x48, 7), 48_000, hop_s=1.0, vad=False))
    assert [r.end_s for r in readings] == pytest.approx([1.0, 2.0], abs=0.002)  # 1.5 ms resampler delay
    assert list(model.stream([x[:4000]], SR, hop_s=0.5, vad=False))[0].window_s == 0.25  # short input: one reading


def test_an_archive_is_checked_unpacked_and_removed(bundle, tmp_path, monkeypatch):
    import tempfile

    from edgeser.bundle import archive

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    tar = archive(bundle, tmp_path / "b.tar.gz", arcname="b")
    x = _signal(seed=6)
    with load(tar) as model:
        assert model.name == "b.tar.gz" and len(list(scratch.iterdir())) == 1
        assert model.predict(x, SR).adv == load(bundle).predict(x, SR).adv
    assert list(scratch.iterdir()) == []
    (bundle / "extra.txt").write_text("planted")
    with pytest.raises(VerifyError, match=rf"^{re.escape(str(tmp_path / 'bad.tar.gz'))}: bundle does not match"):
        load(archive(bundle, tmp_path / "bad.tar.gz", arcname="b"))
    assert list(scratch.iterdir()) == []


def test_onnx_files_students_and_the_default(teacher_onnx, student):
    x = _signal(seed=7)
    onnx = load(teacher_onnx)
    assert onnx.predict(x, SR).adv == pytest.approx(tuple(map(float, predict_signal(open_model(teacher_onnx),
                                                                                    x).mean)), abs=1e-7)
    assert not onnx.bands_measured and onnx.runner.backend == "onnx"
    told = []
    tiny = load(student, notify=told.append)
    assert told and "converting" in told[0] and not tiny.bands_measured
    assert np.isfinite(tiny.predict(x, SR).adv).all()
    default = load()
    assert default.bands_measured and default.name == "default student"
    with pytest.raises(InputError, match="model not found"):
        load(student.parent / "missing.safetensors")


def _readme_snippet() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1, "README.md should hold one python block"
    return blocks[0]


def test_the_readme_python_snippet_runs(tmp_path, monkeypatch, capsys):
    from edgeser.defaults import calibration_list_path

    snippet = _readme_snippet()
    assert len(snippet.strip().splitlines()) <= 5
    clip = sorted(calibration_list_path().parent.glob("*.flac"))[0]
    audio, rate = sf.read(clip, dtype="float32")
    sf.write(tmp_path / "speech.wav", audio, rate)
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert re.search(r"arousal=\d\.\d{3} (calm|neutral|excited)", printed), printed
