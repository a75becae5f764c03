"""Read an audio file on the device and the host: soundfile, mixed to mono, resampled to the model's rate.

One reader with one set of rules for every command and every runner. A file is refused (``AudioError``,
a ``ValueError`` naming the file) when it is missing or unreadable, empty, shorter than
:data:`MIN_SECONDS`, holds NaN or infinite samples, peaks above :data:`MAX_PEAK` (a float file that far
beyond full scale is corrupt, and its squares would overflow the model's normalisation), or is silent
(peak below :data:`SILENCE_PEAK`). Files are read in blocks (:func:`blocks`), so a long recording never
sits in memory whole unless the caller asks for it (:func:`read`).

soxr resamples when installed (it is in the bundle's requirements.txt); without it the numpy
windowed-sinc resampler of :mod:`edgeser.runtime.stream` (the one live capture uses) does the work.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .spec import SAMPLING_RATE

__all__ = ["AudioError", "read", "blocks", "resample", "MIN_SECONDS", "SILENCE_PEAK", "MAX_PEAK", "BLOCK_SECONDS"]

MIN_SECONDS = 0.1
"""Shortest audio accepted, in seconds: shorter clips carry no measurable emotion (and no STFT frame)."""
SILENCE_PEAK = 1e-5
"""A file whose absolute peak stays below this (about -100 dBFS) is silent-only and refused."""
MAX_PEAK = 1000.0
"""Largest absolute sample accepted (+60 dBFS): float files beyond it are corrupt, not loud."""
BLOCK_SECONDS = 10.0
"""Seconds of audio read at a time."""


class AudioError(ValueError):
    """An audio file that cannot be used; ``reason`` says why, without the path."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample a mono float32 signal (soxr HQ when available, else :class:`~edgeser.runtime.stream.Resampler`)."""
    if rate_in == rate_out:
        return np.asarray(x, dtype=np.float32)
    return np.concatenate([*_Resampler(rate_in, rate_out, len(x))(x, last=True)])


class _Resampler:
    """A streaming resampler whose output, block by block, equals resampling the whole signal at once."""

    def __init__(self, rate_in: int, rate_out: int, frames_in: int) -> None:
        self.n_out = int(round(frames_in * rate_out / rate_in))
        self.done = 0
        try:
            import soxr
        except ImportError:
            from .stream import RESAMPLER_TAPS_PER_SIDE, Resampler

            self.soxr: Any = None
            self.fallback = Resampler(rate_in, rate_out)
            # The streaming resampler lags by half its filter; trailing zeros flush the last outputs.
            self.flush = RESAMPLER_TAPS_PER_SIDE * max(1, math.ceil(rate_in / rate_out)) + 2
        else:
            self.soxr = soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality="HQ")

    def __call__(self, x: np.ndarray, *, last: bool) -> Iterator[np.ndarray]:
        x = np.asarray(x, dtype=np.float32)
        if self.soxr is not None:
            yield np.asarray(self.soxr.resample_chunk(x, last=last), dtype=np.float32)
            return
        out = self.fallback(x)
        if last:
            out = np.concatenate([out, self.fallback(np.zeros(self.flush, np.float32))])
        out = out[: max(0, self.n_out - self.done)]
        self.done += len(out)
        if last and self.done < self.n_out:
            out = np.pad(out, (0, self.n_out - self.done))
        yield out.astype(np.float32, copy=False)


def _open(path: Path, fileobj: BinaryIO | None = None) -> Any:
    try:
        import soundfile as sf
    except ImportError:
        raise ImportError("soundfile is not installed: pip install soundfile") from None
    if fileobj is None and not path.is_file():
        raise AudioError(path, "audio file not found")
    try:
        return sf.SoundFile(str(path) if fileobj is None else fileobj)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AudioError(path, f"cannot read audio ({reason})") from None


def blocks(path: str | Path, sampling_rate: int = SAMPLING_RATE, *, block_seconds: float | None = None,
           fileobj: BinaryIO | None = None) -> Iterator[np.ndarray]:
    """Mono float32 blocks of ``path`` at ``sampling_rate``, about ``block_seconds`` (default
    :data:`BLOCK_SECONDS`) long each. With ``fileobj`` (e.g. ``io.BytesIO`` of WAV or FLAC bytes) the
    audio is read from it and ``path`` only names it in messages.

    Concatenated, the blocks equal :func:`read`. The checks that need the whole file (silence) raise
    after the last block; the others raise before the first block or at the block where they fail.

    Raises:
        AudioError: see the module's rules.
        ImportError: soundfile is not installed.
    """
    path = Path(path)
    with _open(path, fileobj) as f:
        rate, frames = int(f.samplerate), int(f.frames)
        if frames == 0:
            raise AudioError(path, "audio file is empty (0 samples)")
        if frames < MIN_SECONDS * rate:
            raise AudioError(path, f"audio is too short ({frames / rate * 1000:.0f} ms; at least "
                                   f"{MIN_SECONDS * 1000:.0f} ms is needed)")
        step = max(1, int((block_seconds or BLOCK_SECONDS) * rate))
        resampler = None if rate == sampling_rate else _Resampler(rate, sampling_rate, frames)
        peak, read_frames, flushed = 0.0, 0, resampler is None
        while read_frames < frames:
            try:
                data = f.read(min(step, frames - read_frames), dtype="float32", always_2d=True)
            except (RuntimeError, ValueError, OSError) as exc:
                raise AudioError(path, f"cannot read audio ({str(exc).splitlines()[0]})") from None
            if len(data) == 0:  # the header promised more frames than the file holds
                break
            read_frames += len(data)
            mono = data.mean(axis=1, dtype=np.float32)
            peak = max(peak, _check_block(path, mono))
            if resampler is None:
                yield mono
            else:
                flushed = read_frames >= frames
                yield from resampler(mono, last=flushed)
        if resampler is not None and not flushed:
            yield from resampler(np.zeros(0, np.float32), last=True)
    if peak < SILENCE_PEAK:
        raise AudioError(path, "audio is silent (peak below -100 dBFS)")


def _check_block(path: Path, mono: np.ndarray) -> float:
    if not np.isfinite(mono).all():
        raise AudioError(path, "audio contains NaN or infinite samples")
    peak = float(np.abs(mono).max())
    if peak > MAX_PEAK:
        raise AudioError(path, f"audio samples reach {peak:.3g}, beyond the {MAX_PEAK:g} (+60 dBFS) a real "
                               "recording can hold: the file is corrupt or not scaled to full scale 1.0")
    return peak


def read(path: str | Path, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """Mono float32 samples of ``path`` at ``sampling_rate`` (the whole file in memory).

    Raises:
        AudioError: see the module's rules.
        ImportError: soundfile is not installed.
    """
    return np.ascontiguousarray(np.concatenate(list(blocks(path, sampling_rate))), dtype=np.float32)
