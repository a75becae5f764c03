"""Read an audio file on the device: soundfile, mixed to mono, resampled to the model's rate.

soxr resamples when installed (it is in the bundle's requirements.txt); without it the numpy
windowed-sinc resampler of :mod:`edgeser.runtime.stream` (the one live capture uses) does the work.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["read", "resample"]

def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample a mono float32 signal (soxr HQ when available, else :class:`~edgeser.runtime.stream.Resampler`)."""
    if rate_in == rate_out:
        return x.astype(np.float32, copy=False)
    n_out = int(round(len(x) * rate_out / rate_in))
    try:
        import soxr
    except ImportError:
        from .stream import RESAMPLER_TAPS_PER_SIDE, Resampler

        # The streaming resampler lags by half its filter; trailing zeros flush the last outputs.
        flush = np.zeros(RESAMPLER_TAPS_PER_SIDE * max(1, math.ceil(rate_in / rate_out)) + 2, np.float32)
        r = Resampler(rate_in, rate_out)
        out = np.concatenate([r(np.asarray(x, np.float32)), r(flush)])[:n_out]
        return np.pad(out, (0, n_out - len(out))).astype(np.float32)
    return np.asarray(soxr.resample(x, rate_in, rate_out, quality="HQ"), dtype=np.float32)


def read(path: str | Path, sampling_rate: int = 16_000) -> np.ndarray:
    """Mono float32 samples of ``path`` at ``sampling_rate``.

    Raises:
        ValueError: the file is missing, unreadable, empty or non-finite (the message names the file).
        ImportError: soundfile is not installed.
    """
    try:
        import soundfile as sf
    except ImportError:
        raise ImportError("soundfile is not installed: pip install soundfile") from None
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: audio file not found")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise ValueError(f"{path}: cannot read audio ({str(exc).splitlines()[0] if str(exc) else exc!r})") from None
    if data.shape[0] == 0:
        raise ValueError(f"{path}: audio file is empty (0 samples)")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: audio contains NaN or infinite samples")
    return resample(data.mean(axis=1, dtype=np.float32), rate, sampling_rate)
