"""Waveform augmentation for distillation and teacher training (numpy only).

Every function takes a float32 waveform (T,) or a batch (N, T) and a ``numpy.random.Generator``, and
returns new arrays (inputs are never modified in place). :class:`Augmenter` chains them with the
probabilities and ranges of an :class:`AugmentConfig`:

- random gain (dB);
- speed perturbation (resampling by a factor near 1, which changes tempo and pitch together, as
  Kaldi's speed perturbation does);
- speed warping: a speed that drifts smoothly within the clip, which reshapes its pitch contour and
  rhythm (the range, slope and local movement of F0) rather than only shifting it;
- formant shifting: the spectral envelope (vocal tract) moved up or down in frequency while pitch and
  tempo stay, a longer or shorter vocal tract for the same voice (with a speed change, pitch and
  formants then move independently, so the clip sounds like another speaker);
- random crops of a window out of a longer clip, or a shortened and shifted copy of a clip that is
  exactly one window long;
- additive noise at a random SNR: white, pink (1/f) or babble (a sum of other clips of the batch);
- mixing two clips of a batch (mixup) with the targets mixed by the same weight.

Spectrogram masking (SpecAugment) acts inside a model, on its log-mel: :func:`spec_mask` does it for
a torch tensor (torch is imported by the caller, never here).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from .errors import InputError
from .runtime.spec import SAMPLING_RATE

__all__ = [
    "AugmentConfig",
    "Augmenter",
    "NOISE_KINDS",
    "gain",
    "speed",
    "warp",
    "formant",
    "random_crop",
    "white_noise",
    "pink_noise",
    "add_noise",
    "babble",
    "mixup",
    "spec_mask",
]

NOISE_KINDS = ("white", "pink", "babble")
BABBLE_VOICES = (3, 6)
"""Range (inclusive) of how many other clips are summed into one babble noise."""
POWER_FLOOR = 1e-10
"""Mean-square floor used when a clip or a noise is (nearly) silent."""


@dataclass
class AugmentConfig:
    """Probabilities and ranges of the waveform augmentations (see :class:`Augmenter`)."""

    gain_db: tuple[float, float] = (-12.0, 6.0)
    """Range of the random gain in dB (applied to every clip)."""
    speed_prob: float = 0.5
    """Probability of a speed perturbation."""
    speed_range: tuple[float, float] = (0.9, 1.1)
    """Range of the speed factor (>1 is faster and higher)."""
    warp_prob: float = 0.0
    """Probability of a speed warp (:func:`warp`)."""
    warp_depth: float = 0.08
    """Largest deviation of the warped speed from 1 (0.08: between 0.92 and 1.08 times)."""
    formant_prob: float = 0.0
    """Probability of a formant shift (:func:`formant`)."""
    formant_range: tuple[float, float] = (0.87, 1.15)
    """Range of the formant frequency factor (>1: a shorter vocal tract, higher formants)."""
    crop_prob: float = 0.5
    """Probability that a clip as long as the window is shortened and shifted (longer clips are always cropped)."""
    crop_min_fraction: float = 0.6
    """Shortest kept part of a window-long clip, as a fraction of the window."""
    noise_prob: float = 0.6
    """Probability of additive noise."""
    snr_db: tuple[float, float] = (5.0, 30.0)
    """Range of the signal-to-noise ratio in dB."""
    noise_kinds: tuple[str, ...] = NOISE_KINDS
    """Noise types drawn uniformly: ``white``, ``pink``, ``babble`` (other clips of the batch)."""
    mix_prob: float = 0.0
    """Probability that a clip is mixed with another clip of the batch (mixup); its target is mixed too."""
    mix_weight: tuple[float, float] = (0.6, 0.9)
    """Range of the weight of the original clip in a mix."""

    def __post_init__(self) -> None:
        for name in ("speed_prob", "warp_prob", "formant_prob", "crop_prob", "noise_prob", "mix_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{name.replace('_', '-')} must be a probability between 0 and 1, got {value}")
        if not 0.0 < self.formant_range[0] <= self.formant_range[1]:
            raise InputError(f"formant range must be two positive factors, low first, got {self.formant_range}")
        if not 0.0 <= self.warp_depth < 1.0:
            raise InputError(f"warp depth must be at least 0 and under 1, got {self.warp_depth}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AugmentConfig:
        known: dict[str, Any] = {
            k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in cls.__dataclass_fields__
        }
        return cls(**known)

    @classmethod
    def off(cls) -> AugmentConfig:
        """No augmentation at all (gain 0 dB, every probability 0)."""
        return cls(gain_db=(0.0, 0.0), speed_prob=0.0, warp_prob=0.0, formant_prob=0.0, crop_prob=0.0,
                   noise_prob=0.0, mix_prob=0.0)


def _power(x: np.ndarray) -> npt.NDArray[np.float64]:
    return cast(npt.NDArray[np.float64],
                np.maximum(np.mean(np.square(x, dtype=np.float64), axis=-1, keepdims=True), POWER_FLOOR))


def gain(x: np.ndarray, db: float) -> np.ndarray:
    """Scale by ``db`` decibels."""
    return (x * np.float32(10.0 ** (db / 20.0))).astype(np.float32)


def speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Resample a (T,) clip so that it plays ``factor`` times faster (and higher); length T / factor."""
    import soxr

    if abs(factor - 1.0) < 1e-6:
        return x.astype(np.float32, copy=True)
    out = soxr.resample(x.astype(np.float32), int(round(SAMPLING_RATE * factor)), SAMPLING_RATE, quality="HQ")
    return cast(np.ndarray, out.astype(np.float32))


WARP_HZ = (0.3, 2.0)
"""Range of the rates (Hz) of the two sinusoids whose sum drives a warp's speed."""


def warp(x: np.ndarray, depth: float, rng: np.random.Generator, *, rate: int = SAMPLING_RATE) -> np.ndarray:
    """Play a (T,) clip at a speed that drifts smoothly between ``1 - depth`` and ``1 + depth``.

    The speed follows the sum of two sinusoids of random rate (WARP_HZ), phase and weight, scaled so its
    largest deviation from 1 over the clip is ``depth``; the clip is read at the cumulative positions by
    linear interpolation. Pitch rises where the speed is above 1 and falls where it is below, so the F0
    contour's range, slope and wiggle change, not only its level; the length changes by the mean speed.
    """
    x = np.asarray(x, dtype=np.float32)
    n = x.shape[0]
    if n < 2 or depth <= 0:
        return x.copy()
    t = np.arange(n) / rate
    curve = np.asarray(
        sum(rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * rng.uniform(*WARP_HZ) * t + rng.uniform(0, 2 * np.pi))
            for _ in range(2))
    )
    curve = curve / max(float(np.abs(curve).max()), 1e-9)
    positions = np.concatenate([[0.0], np.cumsum(1.0 + depth * curve[:-1])])
    positions = positions[positions <= n - 1]
    return cast(np.ndarray, np.interp(positions, np.arange(n), x).astype(np.float32))


FORMANT_NFFT = 512
"""Frame of the formant shift's STFT (32 ms at 16 kHz: harmonics of voices above about 60 Hz resolved)."""
FORMANT_HOP = 128
FORMANT_ORDER = 20
"""Order of the linear-prediction envelope (about 2 poles per kHz of a 16 kHz signal, plus spare)."""


def _lpc_log_envelope(frames: np.ndarray, order: int, size: int) -> np.ndarray:
    """Log magnitude (F, size // 2 + 1) of the all-pole envelope 1/|A(f)| of windowed frames (F, size)."""
    power = np.abs(np.fft.rfft(frames, n=size, axis=1)) ** 2
    r = np.fft.irfft(power, n=size, axis=1)[:, : order + 1]
    r[:, 0] = np.maximum(r[:, 0] * (1.0 + 1e-6), 1e-12)  # white-noise correction; silent frames stay finite
    a = np.zeros((frames.shape[0], order + 1))
    a[:, 0] = 1.0
    err = r[:, 0].copy()
    for i in range(1, order + 1):  # Levinson-Durbin, all frames at once
        k = -(r[:, i] + np.einsum("fj,fj->f", a[:, 1:i], r[:, i - 1 : 0 : -1])) / err
        a[:, 1:i] = a[:, 1:i] + k[:, None] * a[:, i - 1 : 0 : -1]
        a[:, i] = k
        err = np.maximum(err * (1.0 - k * k), 1e-12 * r[:, 0])
    return -np.log(np.abs(np.fft.rfft(a, n=size, axis=1)) + 1e-12)


def formant(x: np.ndarray, factor: float) -> np.ndarray:
    """Move the spectral envelope of a (T,) clip by ``factor`` in frequency; pitch, timing and length stay.

    Per 32 ms frame (hop 8 ms, Hann window), the spectrum is divided by its linear-prediction envelope
    (order FORMANT_ORDER: the vocal tract's resonances) and multiplied by the same envelope read at
    ``f / factor``, so a formant at f moves to ``factor * f`` (past the band edge the envelope holds its
    last value); the harmonics (the pitch) and the phase are kept, and the frames are overlap-added back.
    """
    x = np.asarray(x, dtype=np.float32)
    n = x.shape[0]
    if abs(factor - 1.0) < 1e-6 or n < FORMANT_NFFT:
        return x.copy()
    hop, size = FORMANT_HOP, FORMANT_NFFT
    frames = 1 + -(-(n + size) // hop)
    padded = np.zeros((frames - 1) * hop + size, dtype=np.float64)
    padded[size // 2 : size // 2 + n] = x
    window = np.hanning(size + 1)[:-1]
    index = np.arange(size)[None, :] + hop * np.arange(frames)[:, None]
    framed = padded[index] * window
    spectrum = np.fft.rfft(framed, axis=1)
    envelope = _lpc_log_envelope(framed, FORMANT_ORDER, size)
    bins = spectrum.shape[1]
    source = np.clip(np.arange(bins) / factor, 0, bins - 1)
    low = np.minimum(source.astype(np.int64), bins - 2)
    frac = source - low
    moved = envelope[:, low] * (1 - frac) + envelope[:, low + 1] * frac
    shifted = spectrum * np.exp(moved - envelope)
    out = np.zeros_like(padded)
    norm = np.zeros_like(padded)
    chunks = np.fft.irfft(shifted, n=size, axis=1) * window
    for i in range(frames):  # overlap-add
        out[i * hop : i * hop + size] += chunks[i]
        norm[i * hop : i * hop + size] += window**2
    y = out[size // 2 : size // 2 + n] / np.maximum(norm[size // 2 : size // 2 + n], 1e-3)
    return y.astype(np.float32)


def random_crop(
    x: np.ndarray,
    samples: int,
    rng: np.random.Generator,
    *,
    shorten_prob: float = 0.0,
    min_fraction: float = 0.6,
) -> np.ndarray:
    """A window of exactly ``samples`` samples from a (T,) clip.

    A longer clip gives a random segment. A shorter one is zero-padded at a random offset. With
    probability ``shorten_prob`` the window keeps only a random part of ``min_fraction``..1 of itself,
    placed at a random offset in silence (a shifted, shortened utterance).
    """
    if x.shape[0] > samples:
        start = int(rng.integers(0, x.shape[0] - samples + 1))
        x = x[start : start + samples]
    if rng.random() < shorten_prob:
        keep = int(rng.uniform(min_fraction, 1.0) * min(samples, x.shape[0]))
        start = int(rng.integers(0, x.shape[0] - keep + 1))
        x = x[start : start + keep]
    out = np.zeros(samples, dtype=np.float32)
    offset = int(rng.integers(0, samples - x.shape[0] + 1))
    out[offset : offset + x.shape[0]] = x
    return out


def white_noise(samples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance Gaussian white noise."""
    return rng.standard_normal(samples).astype(np.float32)


def pink_noise(samples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance pink (1/f power) noise, shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    freqs = np.arange(spectrum.shape[0], dtype=np.float64)
    freqs[0] = 1.0
    noise = np.fft.irfft(spectrum / np.sqrt(freqs), n=samples)
    return (noise / np.sqrt(_power(noise))).astype(np.float32)


def babble(
    pool: np.ndarray, samples: int, rng: np.random.Generator, *, exclude: int | None = None
) -> np.ndarray:
    """Sum of a few clips of ``pool`` (N, T), each rolled by a random amount, as unit-variance noise."""
    candidates = [i for i in range(pool.shape[0]) if i != exclude]
    if not candidates:
        return pink_noise(samples, rng)
    count = min(len(candidates), int(rng.integers(BABBLE_VOICES[0], BABBLE_VOICES[1] + 1)))
    noise = np.zeros(samples, dtype=np.float64)
    for i in rng.choice(candidates, size=count, replace=False):
        clip = np.resize(pool[i], samples)
        noise += np.roll(clip / np.sqrt(_power(clip)[0]), int(rng.integers(0, samples)))
    return (noise / np.sqrt(_power(noise))).astype(np.float32)


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``x`` plus ``noise`` scaled so that the signal-to-noise ratio is ``snr_db``."""
    scale = np.sqrt(_power(x) / (_power(noise) * 10.0 ** (snr_db / 10.0)))
    return cast(np.ndarray, (x + noise * scale).astype(np.float32))


def mixup(
    batch: np.ndarray,
    targets: np.ndarray,
    rng: np.random.Generator,
    *,
    prob: float,
    weight: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Mix each clip, with probability ``prob``, with another clip of the batch (targets mixed alike).

    The partner is scaled to the clip's own power before mixing, so the weight is the share of power.
    """
    out_x, out_y = batch.copy(), targets.copy()
    n = batch.shape[0]
    if n < 2 or prob <= 0:
        return out_x, out_y
    for i in np.flatnonzero(rng.random(n) < prob):
        j = int(rng.integers(0, n - 1))
        j += int(j >= i)
        lam = float(rng.uniform(*weight))
        partner = batch[j] * np.sqrt(_power(batch[i]) / _power(batch[j]))
        out_x[i] = lam * batch[i] + (1.0 - lam) * partner
        out_y[i] = lam * targets[i] + (1.0 - lam) * targets[j]
    return out_x.astype(np.float32), out_y.astype(np.float32)


@dataclass
class Augmenter:
    """Applies an :class:`AugmentConfig` to clips and batches."""

    config: AugmentConfig = field(default_factory=AugmentConfig)
    """What to apply and how strongly."""
    seed: int = 0
    """Seed of the augmenter's random generator."""

    def __post_init__(self) -> None:
        for kind in self.config.noise_kinds:
            if kind not in NOISE_KINDS:
                raise ValueError(f"unknown noise kind '{kind}' (choose from {', '.join(NOISE_KINDS)})")
        self.rng = np.random.default_rng(self.seed)

    def clip(self, x: np.ndarray, samples: int) -> np.ndarray:
        """Speed perturbation, speed warp, formant shift and a random crop of one (T,) clip to ``samples`` samples."""
        c, rng = self.config, self.rng
        if c.speed_prob > 0 and rng.random() < c.speed_prob:
            x = speed(x, float(rng.uniform(*c.speed_range)))
        if c.warp_prob > 0 and rng.random() < c.warp_prob:
            x = warp(x, c.warp_depth, rng)
        if c.formant_prob > 0 and rng.random() < c.formant_prob:
            x = formant(x, float(rng.uniform(*c.formant_range)))
        return random_crop(x, samples, rng, shorten_prob=c.crop_prob, min_fraction=c.crop_min_fraction)

    def batch(
        self, clips: list[np.ndarray], targets: np.ndarray, samples: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Augment a list of clips (any lengths) into a (N, samples) batch, with targets (N, D) mixed alike.

        Order: speed, warp, formant shift and crop per clip, then mixup, then noise (babble from the batch's
        clean clips), then gain.
        """
        c, rng = self.config, self.rng
        x = np.stack([self.clip(np.asarray(clip, dtype=np.float32), samples) for clip in clips])
        clean = x.copy()
        x, y = mixup(x, np.asarray(targets, dtype=np.float32), rng, prob=c.mix_prob, weight=c.mix_weight)
        for i in range(x.shape[0]):
            if c.noise_kinds and rng.random() < c.noise_prob:
                kind = c.noise_kinds[int(rng.integers(0, len(c.noise_kinds)))]
                noise = (
                    white_noise(samples, rng)
                    if kind == "white"
                    else pink_noise(samples, rng)
                    if kind == "pink"
                    else babble(clean, samples, rng, exclude=i)
                )
                x[i] = add_noise(x[i], noise, float(rng.uniform(*c.snr_db)))
            x[i] = gain(x[i], float(rng.uniform(*c.gain_db)))
        return np.clip(x, -1.0, 1.0).astype(np.float32), y


def spec_mask(
    mel: Any,
    rng: np.random.Generator,
    *,
    time_masks: int = 2,
    time_width: int = 20,
    freq_masks: int = 2,
    freq_width: int = 8,
) -> Any:
    """SpecAugment on a torch log-mel batch (B, 1, frames, bands): zero (to each clip's mean) random stripes.

    Args:
        mel: torch tensor (B, 1, frames, bands); a masked copy is returned.
        rng: numpy generator for the stripe positions.
        time_masks: stripes along time per clip.
        time_width: widest time stripe in frames.
        freq_masks: stripes along frequency per clip.
        freq_width: widest frequency stripe in bands.
    """
    out = mel.clone()
    _, _, frames, bands = out.shape
    for b in range(out.shape[0]):
        fill = out[b].mean()
        for _ in range(time_masks):
            w = int(rng.integers(0, time_width + 1))
            t0 = int(rng.integers(0, max(1, frames - w)))
            out[b, :, t0 : t0 + w, :] = fill
        for _ in range(freq_masks):
            w = int(rng.integers(0, freq_width + 1))
            f0 = int(rng.integers(0, max(1, bands - w)))
            out[b, :, :, f0 : f0 + w] = fill
    return out
