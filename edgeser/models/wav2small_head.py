"""What a Wav2Small's head reads and how it reads out: the pooled map with its Gram matrix, the speech
statistics of the log-mel (``shape_stats``), and the linear read-out (after an optional hidden layer).

Shared by :class:`edgeser.models.wav2small.Wav2Small` and its export views, so both compute one function.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

__all__ = ["LOG10_SCALE", "SPEECH_DB", "SPEECH_SOFTNESS_DB", "shape_stats", "with_gram", "head_input", "read_out"]

LOG10_SCALE = 10.0 / math.log(10.0)
"""``10 * log10(x) == LOG10_SCALE * ln(x)``."""
SPEECH_DB = 35.0
""":func:`shape_stats`: frames this far under the loudest frame of the input are (softly) silence."""
SPEECH_SOFTNESS_DB = 2.0
"""Width of the sigmoid that weights frames around that threshold."""


def _weighted_moments(x: torch.Tensor, w: torch.Tensor) -> list[torch.Tensor]:
    """x (B, F, M), w (B, F) -> the w-weighted mean and standard deviation over frames, each (B, M)."""
    w = w[:, :, None]
    n = w.sum(1).clamp_min(1e-3)
    mean = (w * x).sum(1) / n
    var = (w * (x - mean[:, None]) ** 2).sum(1) / n
    return [mean, var * torch.rsqrt(var + 1e-4)]  # ~sqrt(var); rsqrt has int8 kernels where sqrt has none


def _db_of_sum(s: torch.Tensor, terms: int) -> torch.Tensor:
    """``10 log10(s)`` for a sum ``1 <= s <= terms`` of ``terms`` powers relative to the largest, as the
    linear interpolation between its values at s = 1, 2, 4, 8 ... (at most 0.26 dB off): RELU, SUB, MUL and
    ADD, which int8 accelerators run, where LiteRT has no int8 LOG."""
    knots = [2.0**k for k in range(max(1, math.ceil(math.log2(terms))))]  # 1, 2, 4 ... under terms
    lo = torch.tensor(knots, dtype=s.dtype)
    slope = torch.tensor([10.0 * math.log10(2.0) / k for k in knots], dtype=s.dtype)  # +3.01 dB per doubling
    u = s[..., None] - lo
    # clamp(s - lo, 0, lo) as two ReLUs: int8 LiteRT has no MINIMUM or RELU_0_TO_1
    return ((torch.relu(u) - torch.relu(u - lo)) * slope).sum(-1)


def shape_stats(mel_db: torch.Tensor) -> torch.Tensor:
    """Log-mel in dB (B, frames, M) -> (B, 4 M): the mean and standard deviation over speech frames of each
    frame's spectral shape (its log-mel less its mean over bands, as MFCCs without c0) and of the shape's
    2-frame delta. A frame's weight is ``sigmoid((L - max L + SPEECH_DB) / SPEECH_SOFTNESS_DB)``, L its
    total mel power in dB, so zero padding and pauses count for nothing; a delta's weight is the product of
    its two frames'. L is computed without a LOG op (:func:`_db_of_sum`), so every op has an int8 kernel."""
    peak = mel_db.amax(2, keepdim=True)
    loud = peak[:, :, 0] + _db_of_sum(torch.exp((mel_db - peak) * (1.0 / LOG10_SCALE)).sum(2), mel_db.shape[2])
    w = torch.sigmoid((loud - loud.amax(1, keepdim=True) + SPEECH_DB) * (1.0 / SPEECH_SOFTNESS_DB))
    shape = mel_db - mel_db.mean(2, keepdim=True)
    delta = shape[:, 2:] - shape[:, :-2]
    return torch.cat(_weighted_moments(shape, w) + _weighted_moments(delta, w[:, 2:] * w[:, :-2]), 1)


def with_gram(pooled: torch.Tensor) -> torch.Tensor:
    """Pooled map (B, C, W) -> feature (B, C * (W + C)): the map and its C x C Gram matrix."""
    return torch.cat([pooled, torch.bmm(pooled, pooled.transpose(1, 2))], 2).flatten(1)


def head_input(pooled: torch.Tensor, mel: torch.Tensor, stats_norm: nn.BatchNorm1d | None) -> torch.Tensor:
    """Pooled map (B, C, W) and log-mel in dB (B, frames, n_mels) -> the map and its Gram matrix, and the
    speech statistics standardised by ``stats_norm`` when the layout has them."""
    f = with_gram(pooled)
    return f if stats_norm is None else torch.cat([f, stats_norm(shape_stats(mel))], 1)


def read_out(feature: torch.Tensor, mlp: nn.Linear | None, adv: nn.Linear, softmax: bool) -> torch.Tensor:
    """Feature (B, C (W + C)) -> (B, 3): ``adv``, after ``relu(mlp)`` (``softmax(mlp)`` with ``softmax``)
    when the layout has that layer."""
    if mlp is None:
        return cast(torch.Tensor, adv(feature))
    hidden = mlp(feature)
    return cast(torch.Tensor, adv(hidden.softmax(1) if softmax else torch.relu(hidden)))
