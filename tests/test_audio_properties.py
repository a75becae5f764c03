"""Property-based tests of the audio reader that every command and every bundle runner uses."""

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeser.audio import load
from edgeser.errors import InputError
from edgeser.runtime.audiofile import MAX_PEAK, MIN_SECONDS, SILENCE_PEAK, AudioError, blocks, read
from edgeser.runtime.predict import predict_blocks
from edgeser.runtime.spec import InputSpec

RATES = [8_000, 11_025, 16_000, 22_050, 44_100, 48_000]
SUBTYPES = ["PCM_16", "PCM_24", "FLOAT", "DOUBLE"]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def recordings(draw):
    rate = draw(st.sampled_from(RATES))
    frames = draw(st.integers(0, int(0.6 * rate)))
    channels = draw(st.integers(1, 3))
    subtype = draw(st.sampled_from(SUBTYPES))
    kind = draw(st.sampled_from(["speech", "silence", "spike", "nan", "huge"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.uniform(-0.5, 0.5, (frames, channels)) * draw(st.sampled_from([1e-6, 1e-3, 1.0]))
    if kind == "silence":
        x[:] = 0
    elif frames and kind in ("spike", "nan", "huge"):
        x[rng.integers(frames), rng.integers(channels)] = {"spike": 0.9, "nan": np.nan, "huge": 1e19}[kind]
    return rate, subtype, x.astype(np.float64)


def _expected_error(path, rate, frames):
    """The rule, restated from the samples as stored: which refusal a file must get, or None."""
    if frames == 0:
        return "empty"
    if frames < MIN_SECONDS * rate:
        return "too short"
    stored = sf.read(path, dtype="float32", always_2d=True)[0].mean(axis=1, dtype=np.float32)
    if not np.isfinite(stored).all():
        return "NaN or infinite"
    if np.abs(stored).max() > MAX_PEAK:
        return "beyond"
    if np.abs(stored).max() < SILENCE_PEAK:
        return "silent"
    return None


@SETTINGS
@given(recordings())
def test_reader_returns_audio_or_one_clear_error(tmp_path, rec):
    rate, subtype, x = rec
    path = tmp_path / "x.wav"
    if subtype.startswith("PCM"):
        x = np.nan_to_num(np.clip(x, -1, 1))  # integer files cannot hold NaN or values beyond full scale
    sf.write(path, x, rate, subtype=subtype)
    expected = _expected_error(path, rate, len(x))
    try:
        y = load(path)
    except InputError as exc:
        assert expected is not None and expected in exc.message, (expected, exc.message)
        assert exc.message.startswith(str(path)) and "\n" not in exc.message and exc.exit_code == 2
        return
    assert expected is None
    assert y.dtype == np.float32 and y.ndim == 1 and np.isfinite(y).all()
    assert abs(len(y) - len(x) * 16_000 / rate) <= 1
    assert np.array_equal(np.concatenate(list(blocks(path, block_seconds=0.05))), y)


class _Mean:
    spec = InputSpec(window_samples=1_000)

    def __call__(self, x):
        return np.array([x.mean(), x.std(), len(x)], np.float32)

    def predict(self, batch):
        return np.stack([self(x) for x in batch])


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 9_000), st.lists(st.integers(0, 9_000), max_size=8), st.integers(0, 2**32 - 1))
def test_prediction_does_not_depend_on_how_the_signal_is_split(n, cuts, seed):
    x = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    whole = predict_blocks(_Mean(), [x])
    split = predict_blocks(_Mean(), np.split(x, sorted(c % (n + 1) for c in cuts)))
    assert np.array_equal(split.windows, whole.windows) and np.array_equal(split.starts_s, whole.starts_s)
    win = _Mean.spec.window_samples
    if n > win * 3 // 2:
        assert (whole.windows[:, 2] == win).all()  # every window is whole; the last one ends the signal
        assert round(whole.starts_s[-1] * 16_000) + win in (n, n - (n % win))


def test_read_of_a_missing_file_is_an_audio_error(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        read(tmp_path / "nope.flac")
