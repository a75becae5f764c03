"""The Wav2Small front-end in numpy: the same maths as :mod:`edgeser.models.frontend`.

Used to build the frozen STFT and mel weights, and by runners that keep the float front-end on the
CPU (an int8 accelerator runs only the conv body). Needs numpy alone.
"""

from __future__ import annotations

from typing import cast

import numpy as np

from .spec import SAMPLING_RATE

__all__ = ["NORM_EPS", "LOG_FLOOR", "hann", "dft_kernels", "mel_edges", "mel_filterbank", "logmel"]

NORM_EPS = 1e-7
"""Variance floor of the per-utterance normalisation."""
LOG_FLOOR = 1e-10
"""Power floor before the log (-100 dB)."""


def hann(n: int) -> np.ndarray:
    """Periodic Hann window of length n (the DFT-even window that librosa and scipy use for STFT)."""
    k = np.arange(n, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * k / n)


def dft_kernels(n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary Hann-windowed DFT rows for the one-sided spectrum: two float32 (n_fft//2+1, n_fft)."""
    k = np.arange(n_fft // 2 + 1, dtype=np.float64)[:, None]
    n = np.arange(n_fft, dtype=np.float64)[None, :]
    phase = -2.0 * np.pi * k * n / n_fft
    w = hann(n_fft)[None, :]
    return (np.cos(phase) * w).astype(np.float32), (np.sin(phase) * w).astype(np.float32)


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3.0, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    mel = f / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-12) / min_log_hz) / logstep, mel)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3.0, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_edges(sampling_rate: int, n_mels: int) -> np.ndarray:
    """The n_mels + 2 band edges in Hz (float64), equally spaced on the Slaney mel scale from 0 to Nyquist."""
    return _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sampling_rate / 2.0), n_mels + 2))


def mel_filterbank(sampling_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Slaney-scale, Slaney-normalised triangular mel filters from 0 Hz to Nyquist.

    Returns:
        float32 (n_fft // 2 + 1, n_mels), to right-multiply a (frames, bins) power spectrogram.
    """
    bins = np.linspace(0.0, sampling_rate / 2.0, n_fft // 2 + 1)
    edges = mel_edges(sampling_rate, n_mels)
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    weights = np.zeros((n_mels, bins.size))
    for i in range(n_mels):
        lower = -ramps[i] / widths[i]
        upper = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[:, None]
    return np.ascontiguousarray(weights.T, dtype=np.float32)


def logmel(x: np.ndarray, *, n_fft: int = 64, hop_length: int = 32, n_mels: int = 26,
           sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """Normalised waveform batch (B, T) -> log-mel (B, 1, frames, n_mels), float32, in float32 maths."""
    x = np.asarray(x, dtype=np.float32)
    x = x - x.mean(axis=1, keepdims=True)
    x = x / np.sqrt((x * x).mean(axis=1, keepdims=True) + np.float32(NORM_EPS))
    real, imag = dft_kernels(n_fft)
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft, axis=1)[:, ::hop_length]  # (B, frames, n_fft)
    power = (frames @ real.T) ** 2 + (frames @ imag.T) ** 2  # (B, frames, bins)
    mel = power @ mel_filterbank(sampling_rate, n_fft, n_mels)
    out = (np.float32(10.0) * np.log10(np.maximum(mel, np.float32(LOG_FLOOR))))[:, None]  # (B, 1, frames, n_mels)
    return cast(np.ndarray, out.astype(np.float32))
