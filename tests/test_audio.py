import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edgeser.audio import list_audio, load, windows
from edgeser.errors import InputError


def test_stereo_44k_becomes_mono_16k(wav):
    t = np.arange(44_100) / 44_100
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    path = wav(np.stack([left, np.zeros_like(left)], 1).astype(np.float32), rate=44_100)
    x = load(path)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - 16_000) <= 1
    # mixing to mono halves the amplitude of a one-sided tone
    assert np.abs(x[1000:-1000]).max() == pytest.approx(0.25, abs=0.01)
    spectrum = np.abs(np.fft.rfft(x))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)  # 1 s -> 1 Hz per bin


def test_flac_pcm16(wav):
    x = (0.3 * np.sin(np.arange(8000) / 5)).astype(np.float32)
    y = load(wav(x, name="a.flac", subtype="PCM_16"))
    assert np.abs(y - x).max() < 1e-3


@pytest.mark.parametrize("case,message", [
    ("missing", "not found"), ("corrupt", "cannot read audio"), ("empty", "empty"),
    ("silent", "silent"), ("nan", "NaN"), ("one sample", "too short"), ("10 ms", "too short"),
    ("truncated", "too short"), ("1e19", "beyond the 1000"), ("1e4", "beyond the 1000"),
])
def test_bad_audio_is_one_clear_error(tmp_path, wav, case, message):
    """The host reader and the device reader (bundle runner) refuse the same files with the same words."""
    from edgeser.runtime.audiofile import AudioError, read

    rng = np.random.default_rng(0)
    if case == "one sample":
        path = wav(np.full(1, 0.5, np.float32))
    elif case == "10 ms":
        path = wav(rng.uniform(-0.5, 0.5, 160).astype(np.float32))
    elif case == "truncated":
        full = wav(rng.uniform(-0.5, 0.5, 16000).astype(np.float32), subtype="PCM_16")
        path = tmp_path / "truncated.wav"
        path.write_bytes(full.read_bytes()[:44 + 2 * 500])  # the header still promises 16000 samples
    elif case in ("1e19", "1e4"):
        x = rng.uniform(-0.5, 0.5, 16000).astype(np.float32)
        x[100] = float(case)
        path = wav(x)
    elif case == "missing":
        path = tmp_path / "nope.wav"
    elif case == "corrupt":
        path = tmp_path / "bad.wav"
        path.write_bytes(b"RIFF\x00\x00garbage" * 10)
    elif case == "empty":
        path = wav(np.zeros(0, dtype=np.float32))
    elif case == "silent":
        path = wav(np.zeros(16000, dtype=np.float32))
    else:
        x = np.ones(16000, dtype=np.float32)
        x[5] = np.nan
        path = wav(x)
    with pytest.raises(InputError) as err:
        load(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)
    assert err.value.exit_code == 2
    with pytest.raises(AudioError) as device:
        read(path)
    assert str(device.value) == err.value.message


def test_loud_but_real_float_audio_is_kept(wav):
    x = np.sin(np.arange(16000) / 10).astype(np.float32) * 4.0  # +12 dBFS: over full scale, not corrupt
    assert np.allclose(load(wav(x)), x)


@pytest.mark.parametrize("rate", [16_000, 44_100])
def test_blocks_equal_the_whole_file(wav, rate):
    from edgeser.runtime.audiofile import blocks, read

    rng = np.random.default_rng(1)
    x = rng.uniform(-0.3, 0.3, int(3.7 * rate)).astype(np.float32)
    path = wav(np.stack([x, x[::-1]], axis=1), rate=rate)
    parts = list(blocks(path, 16_000, block_seconds=0.25))
    assert len(parts) > 10 and max(len(p) for p in parts) <= 0.25 * 16_000 * 1.1
    whole = read(path)
    assert np.array_equal(np.concatenate(parts), whole)
    assert len(whole) == round(len(x) * 16_000 / rate)


def test_windows_are_views_and_pad_short_signals():
    x = np.arange(10, dtype=np.float32)
    w = windows(x, 4, 3)
    assert w.shape == (3, 4)
    assert np.shares_memory(w, x)
    assert w[2].tolist() == [6, 7, 8, 9]
    short = windows(np.ones(3, dtype=np.float32), 5)
    assert short.tolist() == [[1, 1, 1, 0, 0]]
    with pytest.raises(ValueError):
        windows(x, 0)


def test_list_audio_from_folder_csv_txt(tmp_path: Path):
    for name in ("b.wav", "a.flac", "notes.txt"):
        p = tmp_path / name
        if name.endswith("txt"):
            p.write_text("a.flac\n")
        else:
            sf.write(p, np.ones(100, dtype=np.float32) * 0.1, 16000)
    assert [i.path.name for i in list_audio(tmp_path)] == ["a.flac", "b.wav"]
    csv = tmp_path / "l.csv"
    csv.write_text("file,speaker\na.flac,s1\nb.wav,s2\n")
    items = list_audio(csv)
    assert [(i.path, i.speaker) for i in items] == [(tmp_path / "a.flac", "s1"), (tmp_path / "b.wav", "s2")]
    assert [i.path for i in list_audio(tmp_path / "notes.txt")] == [tmp_path / "a.flac"]
    bad = tmp_path / "bad.csv"
    bad.write_text("path,who\nx,y\n")
    with pytest.raises(InputError, match="'file' column"):
        list_audio(bad)
    with pytest.raises(InputError, match="not found"):
        list_audio(tmp_path / "missing")


@pytest.mark.parametrize(("rate_in", "rate_out"), [(44_100, 16_000), (8_000, 16_000)])
def test_runner_resampler_without_soxr_matches_soxr(
    monkeypatch: pytest.MonkeyPatch, rate_in: int, rate_out: int
) -> None:
    """The device reader falls back to the streaming windowed-sinc resampler: same length, close to soxr."""
    from edgeser.runtime import audiofile

    t = np.arange(int(1.3 * rate_in)) / rate_in
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1_900 * t)).astype(np.float32)
    reference = audiofile.resample(x, rate_in, rate_out)
    monkeypatch.setitem(sys.modules, "soxr", None)  # import soxr now raises ImportError
    fallback = audiofile.resample(x, rate_in, rate_out)
    assert fallback.shape == reference.shape
    inner = slice(100, -100)  # both filters start and end from silence differently
    err = fallback[inner] - reference[inner]
    snr_db = 10 * np.log10(np.mean(reference[inner] ** 2) / np.mean(err**2))
    assert snr_db > 70.0, snr_db  # linear interpolation: 49 dB (44.1 kHz) and 20 dB (8 kHz)
