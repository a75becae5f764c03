"""The microphone path on a real audio server: PulseAudio with a null sink, played into with paplay.

Each test starts its own PulseAudio (HOME and XDG_RUNTIME_DIR in a temporary folder) and records in
a child process through PortAudio's ``pulse`` device from the sink's monitor, with the same
:class:`MicSource` -> :func:`listen` code a device runs. Needs (Debian): libportaudio2 pulseaudio
pulseaudio-utils libasound2-plugins, and the sounddevice wheel; skipped when they are missing.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_live import read_log, tiny_onnx
from test_stream import SR, speech_like

from edgeser.runtime import open_model
from edgeser.runtime.listen import ArraySource, listen

pytestmark = pytest.mark.slow

TOOLS = ("pulseaudio", "pactl", "paplay")
SERVER_START_S = 15.0
EXACT_TOLERANCE = 1e-6
"""Device opened at 16 kHz: PulseAudio passes the samples through unchanged, so readings match exactly."""
RESAMPLED_TOLERANCE = 1e-4
"""Device opened at its native 44.1 kHz: PulseAudio upsamples, edgeser downsamples; measured 1.1e-5."""
MIN_RESAMPLED_SNR_DB = 60.0
"""Captured audio vs the file through both resamplers; measured about 72 dB."""

CAPTURE = """
import sys
import numpy as np
from edgeser.runtime import open_model
from edgeser.runtime.listen import listen
from edgeser.runtime.mic import MicSource

model, rate, seconds, npy = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
chunks = []

class Tee(MicSource):
    def read(self):
        chunk = super().read()
        chunks.append(chunk)
        return chunk

source = Tee("pulse", sampling_rate=16000, capture_rate=rate or None)
print("ready", source.capture_rate, file=sys.stderr, flush=True)
summary = listen(open_model(model), source=source, duration_s=seconds)
np.save(npy, np.concatenate(chunks))
print(summary.line(), file=sys.stderr)
"""

DEVICE = """
import sys
from edgeser.runtime import open_model
from edgeser.runtime.listen import run_device
sys.exit(run_device(open_model(sys.argv[1]), device="pulse", log_path=sys.argv[2]))
"""


@pytest.fixture
def pulse(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A private PulseAudio server with a 16 kHz mono null sink ``vsink``; yields the environment to use."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"PulseAudio tools not installed ({', '.join(missing)}): apt-get install pulseaudio "
                    "pulseaudio-utils libportaudio2 libasound2-plugins")
    check = subprocess.run([sys.executable, "-c", "import sounddevice"], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip(f"sounddevice/PortAudio not usable: {check.stderr.strip().splitlines()[-1:]}")
    home = tmp_path / "pulse-home"
    (home / "run").mkdir(parents=True)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(home / "run"),
           "PULSE_SOURCE": "vsink.monitor", "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "-L", "module-native-protocol-unix",
         "-L", "module-null-sink sink_name=vsink rate=16000 channels=1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode != 0:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.skip("PulseAudio did not start here")
            time.sleep(0.1)
        env["PULSE_TEST_SERVER_PID"] = str(server.pid)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=10)


def _lag(captured: np.ndarray, played: np.ndarray) -> int:
    """Samples of extra lead-in in ``captured`` (negative: some of the file's lead-in is missing)."""
    first = int(np.flatnonzero(np.abs(captured) > 1e-3)[0] - np.flatnonzero(np.abs(played) > 1e-3)[0])
    def err(lag: int) -> float:
        ref = np.concatenate([np.zeros(lag, np.float32), played]) if lag >= 0 else played[-lag:]
        n = min(ref.size, captured.size)
        return float(np.sum((captured[:n] - ref[:n]) ** 2))
    return min(range(first - 4, first + 5), key=err)


def _reference(captured: np.ndarray, played: np.ndarray) -> np.ndarray:
    """What the microphone heard, built from the file: its lead-in shifted, padded to the same length."""
    lag = _lag(captured, played)
    ref = np.concatenate([np.zeros(max(lag, 0), np.float32), played[max(-lag, 0):]])
    return np.pad(ref, (0, max(0, captured.size - ref.size)))[: captured.size]


@pytest.mark.parametrize(("capture_rate", "tolerance"), [(16_000, EXACT_TOLERANCE), (0, RESAMPLED_TOLERANCE)],
                         ids=["16k", "native"])
def test_microphone_readings_match_file_playback(pulse: dict[str, str], tmp_path: Path, capture_rate: int,
                                                 tolerance: float) -> None:
    model = tiny_onnx(tmp_path / "tiny.onnx")
    played = np.concatenate([np.zeros(SR // 2, np.float32), speech_like(2.0), np.zeros(SR, np.float32),
                             speech_like(1.5, f0=220.0, level=0.1)])
    wav = tmp_path / "speech.wav"
    sf.write(wav, played, SR, subtype="PCM_16")
    played = sf.read(wav, dtype="float32")[0]  # what --input reads: the same 16-bit samples
    seconds = played.size / SR + 1.5
    child = subprocess.Popen([sys.executable, "-c", CAPTURE, str(model), str(capture_rate), str(seconds),
                              str(tmp_path / "mic.npy")], env=pulse, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    ready = child.stderr.readline()
    assert ready.startswith("ready"), ready + child.stderr.read()
    subprocess.run(["paplay", "--device=vsink", str(wav)], env=pulse, check=True, timeout=60)
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 0, stderr
    assert "dropped 0 samples, 0 overflows" in stderr
    mic = [json.loads(x) for x in stdout.splitlines()]
    captured = np.load(tmp_path / "mic.npy")[: int(round(seconds * SR))]
    reference = _reference(captured, played)
    if capture_rate == SR:
        assert np.array_equal(captured, reference)  # bit-exact through the audio server
    else:
        noise = np.sum((captured.astype(np.float64) - reference) ** 2)
        assert 10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / noise) >= MIN_RESAMPLED_SNR_DB
    out = io.StringIO()
    listen(open_model(model), source=ArraySource(reference, SR, realtime=False), out=out)
    filed = [json.loads(x) for x in out.getvalue().splitlines()]
    assert len(mic) == len(filed) == int(seconds * 2)
    agree = [m["speech"] == f["speech"] for m, f in zip(mic, filed, strict=True)]
    assert sum(agree) >= len(agree) - (0 if capture_rate == SR else 1)
    both = [(m, f) for m, f in zip(mic, filed, strict=True) if m["speech"] and f["speech"]]
    assert len(both) >= 6
    worst = max(abs(m[k] - f[k]) for m, f in both for k in ("arousal", "dominance", "valence"))
    assert worst <= tolerance, f"mic and file readings differ by {worst:.2e}"


def test_audio_server_dying_ends_the_session_with_the_log_intact(pulse: dict[str, str],
                                                                 tmp_path: Path) -> None:
    model = tiny_onnx(tmp_path / "tiny.onnx")
    log = tmp_path / "live.csv"
    child = subprocess.Popen([sys.executable, "-c", DEVICE, str(model), str(log)], env=pulse,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (log.is_file() and len(log.read_text().splitlines()) > 4):
        assert time.monotonic() < deadline and child.poll() is None, "no readings from the pulse device"
        time.sleep(0.05)
    os.kill(int(pulse["PULSE_TEST_SERVER_PID"]), 9)  # the audio device disappears
    stdout, stderr = child.communicate(timeout=30)
    assert child.returncode == 2, stderr
    assert "error: " in stderr and "input device 'pulse'" in stderr
    rows = read_log(log)
    assert len(rows) >= 4 and len(rows) == len(stdout.splitlines())
