"""``edgeser live`` and the shared listening loop: sources, CSV log, faults, the CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from test_stream import SR, FakeRunner, speech_like, utterances
from typer.testing import CliRunner

from edgeser.cli import app
from edgeser.runtime.engine import MODEL_METADATA_KEY, InputSpec
from edgeser.runtime.listen import CSV_COLUMNS, EXIT_INPUT, EXIT_OK, ArraySource, CsvLog, listen, run_device
from edgeser.runtime.mic import MicSource, NoDeviceError, resolve_device
from edgeser.runtime.stream import SourceError, StreamConfig

cli = CliRunner()


def tiny_onnx(path: Path, *, window_samples: int = SR) -> Path:
    """An ONNX A/D/V model without torch: sigmoid of the window's power, mean level and peak."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Mul", ["waveform", "waveform"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["power"], axes=[1], keepdims=1),
        helper.make_node("Abs", ["waveform"], ["mag"]),
        helper.make_node("ReduceMean", ["mag"], ["level"], axes=[1], keepdims=1),
        helper.make_node("ReduceMax", ["waveform"], ["peak"], axes=[1], keepdims=1),
        helper.make_node("Concat", ["power", "level", "peak"], ["feats"], axis=1),
        helper.make_node("Mul", ["feats", "gain"], ["scaled"]),
        helper.make_node("Sigmoid", ["scaled"], ["adv"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_adv",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", "samples"])],
        [helper.make_tensor_value_info("adv", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor("gain", TensorProto.FLOAT, [1], [8.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {MODEL_METADATA_KEY: InputSpec(window_samples=window_samples).to_json()})
    onnx.save(model, str(path))
    return path


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return tiny_onnx(tmp_path / "tiny.onnx")


@pytest.fixture
def speech_wav(tmp_path: Path) -> Path:
    path = tmp_path / "speech.wav"
    sf.write(path, utterances(), SR, subtype="FLOAT")
    return path


def read_log(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows == [] or list(rows[0]) == list(CSV_COLUMNS)
    return rows


# ---- a stand-in for the sounddevice module (no audio hardware needed) ----------------------------

class FakePortAudioError(Exception):
    pass


class FakeStream:
    """Delivers ``signal`` in blocks from a thread, then either stalls or disappears."""

    def __init__(self, device: Any, *, samplerate: int, channels: int, blocksize: int, callback: Any,
                 finished_callback: Any, audio: np.ndarray, disappear: bool, overflow_blocks: set[int],
                 **_: Any) -> None:
        self.samplerate, self.channels, self.blocksize = samplerate, channels, blocksize
        self.callback, self.finished = callback, finished_callback
        self.audio, self.disappear, self.overflow_blocks = audio, disappear, overflow_blocks
        self.active = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.active = True
        self._thread.start()

    def _run(self) -> None:
        for i, start in enumerate(range(0, self.audio.size - self.blocksize + 1, self.blocksize)):
            if not self.active:
                return
            block = np.repeat(self.audio[start:start + self.blocksize, None], self.channels, axis=1)
            status = types.SimpleNamespace(input_overflow=i in self.overflow_blocks)
            self.callback(block, self.blocksize, None, status)
            time.sleep(0.001)
        if self.disappear:
            self.active = False
            self.finished()

    def abort(self) -> None:
        self.active = False

    def close(self) -> None:
        pass


def fake_sounddevice(*, devices: list[tuple[str, int, float]], audio: np.ndarray | None = None,
                     disappear: bool = True, overflow_blocks: set[int] | None = None) -> types.ModuleType:
    """A module with sounddevice's query_devices, default, InputStream and PortAudioError."""
    mod = types.ModuleType("sounddevice")
    table = [{"index": i, "name": n, "max_input_channels": ch, "default_samplerate": rate}
             for i, (n, ch, rate) in enumerate(devices)]
    mod.query_devices = lambda: table  # type: ignore[attr-defined]
    mod.default = types.SimpleNamespace(device=[0 if devices else -1, 0])  # type: ignore[attr-defined]
    mod.PortAudioError = FakePortAudioError  # type: ignore[attr-defined]
    mod.opened = []  # type: ignore[attr-defined]

    def input_stream(*, device: int, **kwargs: Any) -> FakeStream:
        stream = FakeStream(device, audio=np.zeros(0, np.float32) if audio is None else audio,
                            disappear=disappear, overflow_blocks=overflow_blocks or set(), **kwargs)
        mod.opened.append(stream)  # type: ignore[attr-defined]
        return stream

    mod.InputStream = input_stream  # type: ignore[attr-defined]
    return mod


DEVICES = [("Fake USB Mic", 1, 48_000.0), ("HDMI out", 0, 48_000.0), ("Fake Array", 4, 44_100.0)]


# ---- the listening loop ----------------------------------------------------------------------------

def test_listen_prints_one_json_line_per_update(tmp_path: Path) -> None:
    out = io.StringIO()
    summary = listen(FakeRunner(), source=ArraySource(utterances(), SR, realtime=False), out=out,
                     log_path=tmp_path / "log.csv")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == summary.updates == 22 and summary.stopped == "end"
    assert summary.speech_updates == sum(line["speech"] for line in lines) == 16
    assert all((line["arousal"] is None) != line["speech"] for line in lines)
    assert [line["t"] for line in lines[:3]] == [0.5, 1.0, 1.5]
    rows = read_log(tmp_path / "log.csv")
    assert len(rows) == 22 and rows[2]["speech"] == "1"
    assert float(rows[2]["arousal"]) == pytest.approx(lines[2]["arousal"], abs=1e-6)
    assert "end: 22 updates (16 with speech)" in summary.line()


def test_realtime_file_source_keeps_time() -> None:
    started = time.monotonic()
    source = ArraySource(speech_like(1.0), SR, realtime=True)
    summary = listen(FakeRunner(SR), source=source, out=io.StringIO())
    assert 0.9 <= time.monotonic() - started < 3.0 and summary.updates == 2


def test_duration_stops_the_session() -> None:
    summary = listen(FakeRunner(), source=ArraySource(utterances(), SR, realtime=False), out=io.StringIO(),
                     duration_s=2.25)
    assert summary.stopped == "duration" and summary.updates == 4 and summary.audio_s == 2.25


class FailingSource(ArraySource):
    """Plays audio, then fails the way a device does (or raises Ctrl-C) after ``chunks`` chunks."""

    def __init__(self, audio: np.ndarray, *, chunks: int, error: BaseException) -> None:
        super().__init__(audio, SR, realtime=False, name="flaky")
        self.left, self.error, self.closed = chunks, error, False

    def read(self) -> np.ndarray | None:
        self.left -= 1
        if self.left < 0:
            raise self.error
        return super().read()

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(("error", "stopped"), [(SourceError("device unplugged"), "error"),
                                                (KeyboardInterrupt(), "interrupted")])
def test_a_failing_source_ends_cleanly_with_the_log_intact(tmp_path: Path, error: BaseException,
                                                           stopped: str) -> None:
    source = FailingSource(utterances(), chunks=45, error=error)  # 4.5 s, then the failure
    log = tmp_path / "log.csv"
    summary = listen(FakeRunner(), source=source, out=io.StringIO(), log_path=log)
    assert summary.stopped == stopped and source.closed
    assert summary.error == ("device unplugged" if stopped == "error" else None)
    rows = read_log(log)
    assert len(rows) == summary.updates == summary.log_rows == 9
    assert [r["index"] for r in rows] == [str(i) for i in range(9)]


def test_a_crashing_model_leaves_the_flushed_log(tmp_path: Path) -> None:
    class Crashing(FakeRunner):
        def __call__(self, frame: np.ndarray) -> np.ndarray:
            if len(self.calls) == 3:
                raise RuntimeError("model crashed")
            return super().__call__(frame)

    log = tmp_path / "log.csv"
    with pytest.raises(RuntimeError, match="model crashed"):
        listen(Crashing(), source=ArraySource(utterances(), SR, realtime=False), out=io.StringIO(),
               log_path=log)
    rows = read_log(log)
    assert len(rows) == 5 and [r["speech"] for r in rows] == ["0", "0", "1", "1", "1"]


def test_csv_log_appends_and_refuses_foreign_files(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    for _ in range(2):
        listen(FakeRunner(), source=ArraySource(speech_like(1.0), SR, realtime=False), out=io.StringIO(),
               log_path=log)
    assert len(read_log(log)) == 4 and log.read_text().count("time_utc") == 1
    foreign = tmp_path / "other.csv"
    foreign.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not an edgeser live log"):
        CsvLog(foreign)
    assert foreign.read_text() == "a,b\n1,2\n"


def test_source_rate_must_match_the_model() -> None:
    with pytest.raises(ValueError, match="8000 Hz but the model takes 16000 Hz"):
        listen(FakeRunner(), source=ArraySource(np.zeros(8000, np.float32), 8000), out=io.StringIO())


# ---- microphone capture (fake sounddevice) ---------------------------------------------------------

def test_mic_resamples_to_16k_and_counts_overflows(monkeypatch: pytest.MonkeyPatch) -> None:
    t = np.arange(48_000) / 48_000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    sd = fake_sounddevice(devices=DEVICES, audio=tone, disappear=False, overflow_blocks={3, 7})
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    with MicSource("usb", sampling_rate=SR) as mic:
        assert mic.capture_rate == 48_000 and mic.name == "Fake USB Mic"
        got = np.concatenate([mic.read() for _ in range(60)])
    assert got.size >= 15_000 and mic.overflows == 2 and mic.dropped_samples == 0
    n = np.arange(got.size) / SR
    np.testing.assert_allclose(got[200:15_000], 0.5 * np.sin(2 * np.pi * 440 * n[200:15_000]), atol=1e-3)


def test_mic_mixes_multichannel_devices_to_mono(monkeypatch: pytest.MonkeyPatch) -> None:
    sd = fake_sounddevice(devices=DEVICES, audio=np.full(44_100, 0.25, np.float32), disappear=False)
    original = sd.InputStream

    def only_native_channels(**kwargs: Any) -> FakeStream:
        if kwargs["channels"] != 4:
            raise FakePortAudioError("Invalid number of channels")
        return original(**kwargs)

    sd.InputStream = only_native_channels  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    with MicSource(2, sampling_rate=SR) as mic:
        got = np.concatenate([mic.read() for _ in range(30)])
    assert sd.opened[0].channels == 4 and got.size > 8000
    np.testing.assert_allclose(got[200:8000], 0.25, atol=1e-4)


def test_a_full_queue_drops_and_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(devices=DEVICES, disappear=False))
    mic = MicSource(None, sampling_rate=SR)
    block = np.zeros((960, 1), np.float32)
    ok = types.SimpleNamespace(input_overflow=False)
    for _ in range(mic._queue.maxsize + 5):
        mic._callback(block, 960, None, ok)
    assert mic.dropped_samples == 5 * 960 and mic._queue.qsize() == mic._queue.maxsize
    mic.close()
    mic.close()


def test_no_or_unknown_device_lists_devices_and_suggests_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(devices=DEVICES))
    assert resolve_device(None).name == "Fake USB Mic" and resolve_device("2").name == "Fake Array"
    with pytest.raises(NoDeviceError, match=r"no input device matches 'studio'.*Fake USB Mic.*--input FILE"):
        resolve_device("studio")
    with pytest.raises(NoDeviceError, match="2 input devices match 'fake'"):
        resolve_device("fake")
    with pytest.raises(NoDeviceError, match="no input device matches '1'"):  # HDMI out has no input
        resolve_device("1")
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(devices=[("HDMI out", 0, 48_000.0)]))
    with pytest.raises(NoDeviceError, match=r"no audio input device found \(input devices: none\)"):
        resolve_device(None)


def test_a_device_that_disappears_ends_the_session(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    audio = np.repeat(utterances()[: 4 * SR], 3)  # 4 s at 48 kHz (a crude upsampling is fine here)
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(devices=DEVICES, audio=audio))
    out, err = io.StringIO(), io.StringIO()
    status = run_device(FakeRunner(), device="USB", log_path=tmp_path / "log.csv", out=out, err=err)
    assert status == EXIT_INPUT
    assert "input device 'Fake USB Mic' stopped" in err.getvalue() and err.getvalue().startswith("error: ")
    lines = out.getvalue().splitlines()
    assert 7 <= len(lines) <= 8 and len(read_log(tmp_path / "log.csv")) == len(lines)


def test_run_device_without_a_device_or_sounddevice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(devices=[]))
    err = io.StringIO()
    assert run_device(FakeRunner(), out=io.StringIO(), err=err) == EXIT_INPUT
    assert "no audio input device found" in err.getvalue()
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import sounddevice raises ImportError
    err = io.StringIO()
    assert run_device(FakeRunner(), out=io.StringIO(), err=err) == EXIT_INPUT
    assert "pip install 'edgeser[mic]'" in err.getvalue()


def test_run_device_for_a_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    audio = np.repeat(utterances()[: 4 * SR], 3)
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(devices=DEVICES, audio=audio,
                                                                     disappear=False))
    out, err = io.StringIO(), io.StringIO()
    status = run_device(FakeRunner(), duration_s=2.0, config=StreamConfig(hop_ms=250.0), out=out, err=err)
    assert status == EXIT_OK
    assert len(out.getvalue().splitlines()) == 8 and err.getvalue().startswith("duration: 8 updates")


def test_run_device_treats_sigterm_like_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    audio = np.repeat(np.tile(utterances(), 3), 3)  # 33 s at 48 kHz: longer than the test
    sd = fake_sounddevice(devices=DEVICES, audio=audio, disappear=False)
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    before = signal.getsignal(signal.SIGTERM)

    def stop() -> None:
        while not sd.opened:  # run_device installs its handler before it opens the device
            time.sleep(0.01)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop, daemon=True).start()
    err = io.StringIO()
    assert run_device(FakeRunner(), out=io.StringIO(), err=err) == EXIT_OK
    assert err.getvalue().startswith("interrupted: ") and not sd.opened[0].active
    assert signal.getsignal(signal.SIGTERM) == before


def test_streaming_runs_from_a_bundle_copy_of_the_runtime(tmp_path: Path) -> None:
    import edgeser.runtime

    shutil.copytree(Path(edgeser.runtime.__file__).parent, tmp_path / "edgeser_runtime",
                    ignore=shutil.ignore_patterns("__pycache__"))
    model = tiny_onnx(tmp_path / "tiny.onnx")
    code = (
        "import sys, numpy as np\n"
        "from edgeser_runtime import open_model\n"
        "from edgeser_runtime.listen import listen, ArraySource\n"
        "import edgeser_runtime.mic, edgeser_runtime.vad\n"
        "t = np.arange(32000) / 16000\n"
        "x = (0.2 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 4 * t) > 0)).astype(np.float32)\n"
        f"s = listen(open_model({str(model)!r}), source=ArraySource(x, 16000, realtime=False))\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('edgeser', 'torch', 'sounddevice'))\n"
        "print(s.updates, s.speech_updates, bad, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "4 4 []" and len(done.stdout.splitlines()) == 4


# ---- the command line --------------------------------------------------------------------------------

def test_cli_plain_file_playback(model: Path, speech_wav: Path, tmp_path: Path) -> None:
    log = tmp_path / "live.csv"
    result = cli.invoke(app, ["live", "--input", str(speech_wav), "--fast", "--bundle", str(model), "--plain",
                              "--log", str(log)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 22 and sum(x["speech"] for x in lines) == 16
    speech = [x for x in lines if x["speech"]]
    assert all(0.5 < x["arousal"] < 1.0 and 0.5 < x["dominance"] < 1.0 for x in speech)
    assert "end: 22 updates (16 with speech)" in result.stderr
    assert len(read_log(log)) == 22


def test_cli_rich_view(model: Path, speech_wav: Path) -> None:
    result = cli.invoke(app, ["live", "-i", str(speech_wav), "--fast", "-b", str(model), "--smoothing", "0.5",
                              "--hop-s", "0.25"])
    assert result.exit_code == 0, result.output
    for text in ("edgeser live · speech.wav · tiny.onnx", "arousal", "dominance", "valence", "voice",
                 "level", "44 updates", "lost 0", "end: 44 updates (30 with speech)"):
        assert text in result.stdout, text


def test_cli_ctrl_c_exits_0_with_a_summary(model: Path, speech_wav: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    real_read = ArraySource.read

    def read(self: ArraySource) -> np.ndarray | None:
        if self._pos >= 3 * SR:
            raise KeyboardInterrupt
        return real_read(self)

    monkeypatch.setattr(ArraySource, "read", read)
    log = tmp_path / "log.csv"
    result = cli.invoke(app, ["live", "-i", str(speech_wav), "--fast", "-b", str(model), "--log", str(log)])
    assert result.exit_code == 0, result.output
    assert "interrupted: 6 updates" in result.stdout and "6 rows logged" in result.stdout
    assert len(read_log(log)) == 6


def test_cli_device_errors(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(devices=[]))
    result = cli.invoke(app, ["live", "-b", str(model)])
    assert result.exit_code == 2
    assert "no audio input device found" in result.stderr and "--input FILE" in result.stderr
    result = cli.invoke(app, ["live", "--list-devices"])
    assert result.exit_code == 0 and "no audio input devices found" in result.stdout
    audio = np.repeat(utterances()[: 4 * SR], 3)
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(devices=DEVICES, audio=audio))
    result = cli.invoke(app, ["live", "--list-devices"])
    assert result.exit_code == 0 and "*0: Fake USB Mic (1 ch, 48000 Hz)" in result.stdout
    assert "HDMI" not in result.stdout
    log = tmp_path / "log.csv"
    result = cli.invoke(app, ["live", "-b", str(model), "-d", "usb", "--plain", "--log", str(log)])
    assert result.exit_code == 2
    assert "error: the audio source failed: input device 'Fake USB Mic' stopped" in result.stderr
    assert len(read_log(log)) == len([x for x in result.stdout.splitlines() if x.startswith("{")]) >= 7


def test_cli_bad_input(model: Path, speech_wav: Path, tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    result = cli.invoke(app, ["live", "--fast", "-b", str(model)])
    assert result.exit_code == 2 and "--fast needs --input FILE" in result.stderr
    result = cli.invoke(app, ["live", "-b", str(tmp_path / "missing.onnx")])
    assert result.exit_code == 2 and "missing.onnx: model not found" in result.stderr
    result = cli.invoke(app, ["live", "-b", str(model), "-i", str(tmp_path / "none.wav")])
    assert result.exit_code == 2 and "none.wav: audio file not found" in result.stderr
    result = cli.invoke(app, ["live", "-b", str(model), "-i", str(speech_wav), "--hop-s", "2.0"])
    assert result.exit_code == 2 and "longer than the window" in result.stderr
    foreign = tmp_path / "data.csv"
    foreign.write_text("x,y\n")
    result = cli.invoke(app, ["live", "-b", str(model), "-i", str(speech_wav), "--log", str(foreign)])
    assert result.exit_code == 5 and "not an edgeser live log" in result.stderr
    monkeypatch.setattr("edgeser.defaults.assets_dir", lambda: tmp_path / "no-assets")
    result = cli.invoke(app, ["live", "-i", str(speech_wav)])
    assert result.exit_code == 2 and "embedded default student is not installed" in result.stderr



def test_a_short_file_gets_one_reading_and_a_too_short_one_is_refused(model: Path, tmp_path: Path) -> None:
    short = tmp_path / "short.wav"
    sf.write(short, speech_like(0.3), SR, subtype="FLOAT")  # less than one 0.5 s hop
    result = cli.invoke(app, ["live", "-i", str(short), "--fast", "-b", str(model), "--plain"])
    assert result.exit_code == 0, result.output
    [line] = [json.loads(x) for x in result.stdout.splitlines()]
    assert line["speech"] and 0.5 < line["arousal"] < 1.0 and line["t"] == line["window_s"] == 0.3
    assert "end: 1 updates (1 with speech) over 0.3 s" in result.stderr
    tiny = tmp_path / "tiny.wav"
    sf.write(tiny, speech_like(0.05), SR, subtype="FLOAT")
    result = cli.invoke(app, ["live", "-i", str(tiny), "--fast", "-b", str(model), "--plain"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == f"error: {tiny}: audio is too short (50 ms; at least 100 ms is needed)\n"


def test_a_student_checkpoint_runs_from_the_export_cache(model: Path, tmp_path: Path) -> None:
    """The cache key stays sha256(checkpoint bytes + edgeser version)[:16], so earlier exports stay valid."""
    import hashlib

    from edgeser import __version__
    from edgeser.runners import cache_dir, open_any

    student = tmp_path / "mine.safetensors"
    student.write_bytes(b"not read: its export is already cached")
    digest = hashlib.sha256(student.read_bytes() + __version__.encode()).hexdigest()[:16]
    cached = cache_dir() / "live" / f"mine.{digest}.onnx"
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(model, cached)
    told: list[str] = []
    runner, name = open_any(student, notify=told.append)
    assert name == "mine.safetensors" and told == [] and runner.spec.window_samples == SR
    cached.unlink()

@pytest.mark.slow
def test_default_student_is_exported_once_and_cached(tmp_path: Path, speech_wav: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    from edgeser import models
    from edgeser.runners import default_runner, student_window_samples

    student = models.save(models.create_model("wav2small"), tmp_path / "student.safetensors")
    trained = models.save(models.create_model("wav2small"), tmp_path / "trained.safetensors",
                          extra={"config": {"window_seconds": 1.5}})
    assert student_window_samples(trained) == 24_000 and student_window_samples(student) == 2 * SR
    monkeypatch.setenv("EDGESER_CACHE", str(tmp_path / "cache"))
    told: list[str] = []
    runner = default_runner(student=student, notify=told.append)
    cached = list((tmp_path / "cache" / "live").glob("student.*.onnx"))
    assert len(cached) == 1 and runner.spec.window_samples == 2 * SR
    assert told == [f"converting {student} to ONNX once (cached in {tmp_path / 'cache' / 'live'})"]
    mtime = cached[0].stat().st_mtime_ns
    default_runner(student=student, notify=told.append)
    assert cached[0].stat().st_mtime_ns == mtime and len(told) == 1
    result = cli.invoke(app, ["live", "-i", str(speech_wav), "--fast", "-b", str(student), "--plain"])
    assert result.exit_code == 0, result.output
    assert sum(json.loads(x)["speech"] for x in result.stdout.splitlines() if x.startswith("{")) == 16
    assert "converting" not in result.stderr  # cached: nothing to say
    for command in (["live", "-i", str(speech_wav), "--fast", "--plain", "-b"], ["predict", "--model"]):
        shutil.rmtree(tmp_path / "cache")
        args = [*command, str(trained)] + ([str(speech_wav)] if command[0] == "predict" else [])
        result = cli.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert f"converting {trained} to ONNX once (cached in " in result.stderr
        assert "converting" not in result.stdout


def _start_live(args: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code = "from edgeser.cli import app; app(prog_name='edgeser')"
    return subprocess.Popen([sys.executable, "-c", code, "live", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_rows(log: Path, rows: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if log.is_file() and len(log.read_text().splitlines()) > rows:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {rows} log rows in time: {proc.poll()}")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_the_log_survives_ctrl_c_and_kill(model: Path, tmp_path: Path, sig: signal.Signals) -> None:
    """Ctrl-C and SIGTERM (``kill``, ``systemctl stop``) end the session with exit 0 and a summary."""
    wav = tmp_path / "long.wav"
    sf.write(wav, np.tile(utterances(), 3), SR)  # 33 s, played in real time
    log = tmp_path / "log.csv"
    proc = _start_live(["-i", str(wav), "-b", str(model), "--plain", "--log", str(log), "--hop-s", "0.25"])
    _wait_rows(log, 6, proc)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=30)
    rows = read_log(log)
    assert len(rows) >= 6 and all(r["level_dbfs"] and r["dropped_samples"] == "0" for r in rows)
    assert [int(r["index"]) for r in rows] == list(range(len(rows)))
    if sig in (signal.SIGINT, signal.SIGTERM):
        assert proc.returncode == 0, stderr
        assert f"interrupted: {len(rows)} updates" in stderr and f"{len(rows)} rows logged" in stderr
        assert len(stdout.splitlines()) == len(rows)
    else:
        assert proc.returncode == -signal.SIGKILL
