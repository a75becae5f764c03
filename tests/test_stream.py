"""Streaming runtime: ring buffer, resampler, energy gate and the window/hop streamer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeser.runtime.engine import InputSpec
from edgeser.runtime.stream import Reading, Resampler, RingBuffer, StreamConfig, Streamer
from edgeser.runtime.vad import EnergyGate, VadConfig

SR = 16_000
CHUNK_SIZES = (160, 1000, 16000)


class FakeRunner:
    """Deterministic stand-in for a model: A/D/V from the window's level, spread and length."""

    backend = "fake"

    def __init__(self, window_samples: int = 2 * SR, *, fixed_length: bool = False) -> None:
        self.spec = InputSpec(window_samples=window_samples, fixed_length=fixed_length)
        self.calls: list[int] = []
        self.resets = 0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        self.calls.append(frame.size)
        x = frame.astype(np.float64)
        return np.array([np.abs(x).mean(), x.std(), x[: x.size // 2].std()], dtype=np.float32)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return np.stack([self(x) for x in batch])

    def reset(self) -> None:
        self.resets += 1


def speech_like(seconds: float, *, f0: float = 140.0, level: float = 0.2, sr: int = SR) -> np.ndarray:
    """Harmonic voice with a pitch glide, cut into 4 Hz syllables that dip to silence."""
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.2 * np.sin(2 * np.pi * 0.7 * t))) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = np.maximum(0.0, np.sin(2 * np.pi * 4 * t)) ** 2
    return (level * voice / np.abs(voice).max() * syllables).astype(np.float32)


def utterances() -> np.ndarray:
    """1 s silence, 4 s speech, 2 s silence, 3 s speech, 1 s faint noise (11 s)."""
    rng = np.random.default_rng(0)
    return np.concatenate([np.zeros(SR, np.float32), speech_like(4), np.zeros(2 * SR, np.float32),
                           speech_like(3, f0=220), (1e-4 * rng.standard_normal(SR)).astype(np.float32)])


def run(streamer: Streamer, audio: np.ndarray, chunk: int) -> list[Reading]:
    out: list[Reading] = []
    for i in range(0, audio.size, chunk):
        out += streamer.feed(audio[i:i + chunk])
    return out


def comparable(readings: list[Reading]) -> list[tuple[object, ...]]:
    """Everything in a reading except its measured latency."""
    return [(r.index, r.end_s, r.window_s, r.speech, r.adv, r.level_dbfs) for r in readings]


def test_chunk_size_does_not_change_readings() -> None:
    audio = utterances()
    results = {c: comparable(run(Streamer(FakeRunner(), StreamConfig(smoothing=0.3)), audio, c))
               for c in (*CHUNK_SIZES, 1234, 7)}
    assert len(results[160]) == audio.size // (SR // 2)
    for chunk, got in results.items():
        assert got == results[160], f"chunk {chunk} differs"


@pytest.fixture(scope="module")
def wav2small_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    from edgeser.export.onnx import export
    from edgeser.models import create_model
    from edgeser.recipe import load_recipe

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w2s") / "wav2small.onnx"
    export(create_model("wav2small"), path, recipe=load_recipe("rpi"), spec=InputSpec(window_samples=SR))
    return path


@pytest.mark.slow
def test_chunk_size_invariance_with_wav2small_onnx(wav2small_onnx: Path) -> None:
    from edgeser.runtime import open_model

    audio = utterances()[: 6 * SR]
    config = StreamConfig(hop_ms=250.0)
    results = {c: comparable(run(Streamer(open_model(wav2small_onnx), config), audio, c))
               for c in CHUNK_SIZES}
    with_speech = [r for r in results[160] if r[4] is not None]
    assert len(with_speech) >= 10
    assert all(0.0 <= v <= 1.5 for r in with_speech for v in r[4])  # type: ignore[union-attr]
    assert results[1000] == results[160] and results[16000] == results[160]


def test_reset_gives_a_fresh_stream() -> None:
    audio = utterances()
    runner = FakeRunner()
    streamer = Streamer(runner, StreamConfig(smoothing=0.5))
    first = comparable(run(streamer, audio, 1000))
    run(streamer, audio[: 3 * SR + 123], 777)  # leave partial hops, gate state and smoothing behind
    streamer.reset()
    assert streamer.samples_seen == 0 and streamer.ring.filled == 0 and runner.resets >= 2
    assert comparable(run(streamer, audio, 1000)) == first


def test_buffers_stay_bounded_over_a_long_stream() -> None:
    streamer = Streamer(FakeRunner(SR), StreamConfig(hop_ms=100.0))
    resampler = Resampler(44_100, SR)
    sizes = (streamer.ring._data.size, streamer.gate._rest.size, resampler._history.size)
    block = speech_like(1.0)
    for _ in range(60):
        streamer.feed(block)
        resampler(np.tile(block, 3)[:44_100])
    assert (streamer.ring._data.size, streamer.gate._rest.size, resampler._history.size) == sizes
    assert streamer.ring.filled == SR and streamer.updates == 600


def test_window_comes_from_the_model_unless_overridden() -> None:
    assert Streamer(FakeRunner(32_000)).window_samples == 32_000
    assert Streamer(FakeRunner(32_000), StreamConfig(window_ms=3000.0)).window_samples == 48_000
    fixed = Streamer(FakeRunner(32_000, fixed_length=True), StreamConfig(window_ms=3000.0))
    assert fixed.window_samples == 32_000  # a fixed-length model takes only its own window


def test_partial_windows_until_full_and_fixed_models_wait() -> None:
    audio = speech_like(3.0)
    runner = FakeRunner(2 * SR)
    readings = run(Streamer(runner), audio, 1000)
    assert [r.window_s for r in readings] == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    fixed = FakeRunner(2 * SR, fixed_length=True)
    readings = run(Streamer(fixed), audio, 1000)
    assert [r.index for r in readings] == [0, 1, 2] and set(fixed.calls) == {2 * SR}



@pytest.mark.parametrize("chunk", [160, 1000, 7])
def test_end_of_input_reads_a_stream_that_gave_no_reading(chunk: int) -> None:
    short = speech_like(0.3)  # shorter than one hop: no hop completes
    runner = FakeRunner(2 * SR)
    streamer = Streamer(runner)
    assert run(streamer, short, chunk) == []
    [reading] = streamer.flush()
    assert reading.speech and reading.adv is not None and reading.index == 0
    assert reading.end_s == reading.window_s == pytest.approx(0.3) and runner.calls == [short.size]
    np.testing.assert_allclose(reading.adv, runner(short), rtol=1e-6)  # the model saw all of it, once
    assert streamer.flush() == []  # a reading was given: nothing more
    fixed = FakeRunner(2 * SR, fixed_length=True)  # waits for a full window: 1.5 s gives no hop reading
    streamer = Streamer(fixed)
    assert run(streamer, speech_like(1.5), chunk) == []
    assert [r.window_s for r in streamer.flush()] == [1.5]


def test_end_of_input_reads_nothing_more_after_a_reading_or_below_the_minimum() -> None:
    streamer = Streamer(FakeRunner(2 * SR))
    assert len(run(streamer, speech_like(1.2), 1000)) == 2 and streamer.flush() == []  # the tail is not read
    streamer = Streamer(FakeRunner(2 * SR))
    assert run(streamer, speech_like(0.09), 1000) == [] and streamer.flush() == []  # under 0.1 s
    silent = Streamer(FakeRunner(2 * SR))
    run(silent, np.zeros(SR // 4, np.float32), 1000)
    [reading] = silent.flush()
    assert not reading.speech and reading.adv is None  # silence is a reading without A/D/V, as in a stream

@pytest.mark.parametrize(("settings", "message"), [
    ({"hop_ms": 3000.0}, "longer than the window"),
    ({"hop_ms": 0.0}, "hop_ms must be between 10 and 60000, got 0.0"),
    ({"smoothing": 1.0}, "smoothing must be between 0 and 0.99, got 1.0"),
])
def test_bad_stream_settings_are_refused(settings: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Streamer(FakeRunner(2 * SR), StreamConfig(**settings))  # type: ignore[arg-type]


def test_smoothing_is_an_ema_that_silence_resets() -> None:
    audio = utterances()
    raw = run(Streamer(FakeRunner(), StreamConfig()), audio, 1600)
    smooth = run(Streamer(FakeRunner(), StreamConfig(smoothing=0.5)), audio, 1600)
    previous: np.ndarray | None = None
    checked = 0
    for r, s in zip(raw, smooth, strict=True):
        assert (r.adv is None) == (s.adv is None)
        if r.adv is None:
            previous = None
            continue
        expected = np.array(r.adv) if previous is None else 0.5 * previous + 0.5 * np.array(r.adv)
        np.testing.assert_allclose(s.adv, expected, rtol=1e-12)
        checked += previous is not None
        previous = expected
    assert checked >= 5


def test_silence_and_steady_noise_give_no_readings() -> None:
    rng = np.random.default_rng(1)
    signals = {
        "digital silence": np.zeros(6 * SR, np.float32),
        "faint noise": (3e-4 * rng.standard_normal(6 * SR)).astype(np.float32),  # about -70 dBFS
        "steady loud noise": (0.02 * rng.standard_normal(6 * SR)).astype(np.float32),  # about -34 dBFS
    }
    for name, audio in signals.items():
        runner = FakeRunner()
        readings = run(Streamer(runner), audio, 1000)
        assert len(readings) == 12, name
        assert all(not r.speech and r.adv is None for r in readings), name
        assert runner.calls == [], name


def test_speech_opens_the_gate_and_pauses_close_it() -> None:
    readings = run(Streamer(FakeRunner()), utterances(), 1000)
    speech_at = [r.end_s for r in readings if r.speech]
    # speech in 1-5 s and 7-10 s; the hop ending at t covers (t - 0.5, t]; 300 ms hangover
    assert speech_at == [1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0, 10.5]
    assert all(r.adv is not None for r in readings if r.speech)
    assert all(r.adv is None for r in readings if not r.speech)


def test_no_vad_reads_every_hop() -> None:
    runner = FakeRunner()
    config = StreamConfig(vad=VadConfig(enabled=False))
    readings = run(Streamer(runner, config), np.zeros(3 * SR, np.float32), 800)
    assert [r.speech for r in readings] == [True] * 6 and len(runner.calls) == 6


def test_gate_hysteresis_holds_between_thresholds() -> None:
    gate = EnergyGate(VadConfig(hangover_ms=50.0), sampling_rate=SR)
    frame = gate.frame_samples
    t = np.arange(frame * 100) / SR
    tone = np.sin(2 * np.pi * 300 * t).astype(np.float32)
    def level(db: float) -> np.ndarray:
        return tone * np.float32(10 ** (db / 20) * np.sqrt(2))
    _, quiet = gate.feed(level(-40.0))  # learns a floor at -40 dBFS
    _, middle = gate.feed(level(-31.0))  # 9 dB over the floor: under the 12 dB needed to open
    assert not quiet.any() and not middle.any()
    _, loud = gate.feed(level(-20.0))
    assert not loud[:2].any() and loud[2:].all()  # opens on the third loud frame in a row
    floor = gate.floor_dbfs
    assert floor is not None and floor > -40.0  # the floor creeps up under the loud part
    _, held = gate.feed(level(floor + 8.0)[: frame * 20])  # between close (6 dB) and open (12 dB)
    assert held.all()
    _, closed = gate.feed(level(-45.0))
    assert closed[0] and not closed[-1]  # closes after the hangover


def test_ring_buffer_keeps_the_newest_samples_contiguous() -> None:
    ring = RingBuffer(5)
    assert ring.latest().size == 0
    ring.write(np.arange(3, dtype=np.float32))
    np.testing.assert_array_equal(ring.latest(), [0, 1, 2])
    ring.write(np.arange(3, 10, dtype=np.float32))
    view = ring.latest()
    np.testing.assert_array_equal(view, [5, 6, 7, 8, 9])
    assert view.flags.c_contiguous and not view.flags.writeable and not view.flags.owndata
    np.testing.assert_array_equal(ring.latest(2), [8, 9])
    ring.write(np.arange(100, 117, dtype=np.float32))  # more than the capacity at once
    np.testing.assert_array_equal(ring.latest(), [112, 113, 114, 115, 116])


@pytest.mark.parametrize("rate_in", [44_100, 48_000, 22_050, 8_000])
def test_resampler_is_accurate_and_chunk_invariant(rate_in: int) -> None:
    t = np.arange(rate_in) / rate_in
    x = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    outs = []
    for chunk in (*CHUNK_SIZES, 333):
        r = Resampler(rate_in, SR)
        outs.append(np.concatenate([r(x[i:i + chunk]) for i in range(0, x.size, chunk)]))
    assert all(np.array_equal(o, outs[0]) for o in outs)
    y = outs[0]
    assert SR - 100 < y.size <= SR
    n = np.arange(y.size) / SR
    expected = 0.5 * np.sin(2 * np.pi * 440 * n) + 0.2 * np.sin(2 * np.pi * 3000 * n)
    inner = slice(200, -200)  # the stream starts from silence
    assert float(np.abs(y[inner] - expected[inner]).max()) < 1e-4


def test_resampler_removes_what_the_output_rate_cannot_hold() -> None:
    t = np.arange(48_000) / 48_000
    alias = (0.5 * np.sin(2 * np.pi * 12_000 * t)).astype(np.float32)  # above the 8 kHz output Nyquist
    y = Resampler(48_000, SR)(alias)[200:-200]
    assert 20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2)) / (0.5 / np.sqrt(2))) < -60.0
    same = speech_like(0.1)
    assert Resampler(SR, SR)(same) is not None and np.array_equal(Resampler(SR, SR)(same), same)
