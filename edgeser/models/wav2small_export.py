"""Wav2Small's export views: the student's function as a module whose children are its parts.

Both views have the children ``frontend``, ``body``, ``softmax`` and ``head`` (:data:`edgeser.models.parts.PARTS`),
and every op runs inside one of them, so an exported node's scope names its part:

- ``frontend``: waveform normalisation, STFT, mel projection and log;
- ``body``: the seven conv blocks with their max-pool, and the attention pooling's value conv (``lin``);
- ``softmax``: the attention logits (``sof``), their softmax over time and its product with the values;
- ``head``: the sum over time and everything after it (Gram matrix, speech statistics, hidden layer, outputs).

:class:`Wav2SmallPlainView` runs the trained modules in the trained layout; :class:`Wav2SmallExportView`
re-parameterises them for onnxruntime.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .frontend import GeneratedFrontend, LogmelFrontend, prenorm
from .wav2small_head import LOG10_SCALE, head_input, read_out

if TYPE_CHECKING:
    from .wav2small import ConvBlock, Vgg7, Wav2Small, Wav2SmallConfig

__all__ = ["Wav2SmallExportView", "Wav2SmallPlainView", "INT8_CHANNEL_MULTIPLE", "FIRST_CONV_COPIES"]

INT8_CHANNEL_MULTIPLE = 16
"""Conv channels are padded to a multiple of this in the export view: onnxruntime's direct int8 conv
kernel (MlasConvSym, x86) needs at least 16 output channels and multiples of 4 in and out; with 13 it
falls back to im2col + GEMM, slower than the float conv (docs/int8-speed.md)."""
FIRST_CONV_COPIES = 4
"""Time-shifted copies of the log-mel the first conv of the export view reads (3 used, 1 with zero
weights, so the int8 kernel sees a multiple of 4 input channels)."""


def _folded_conv(block: ConvBlock, channels: int, *, first: bool) -> nn.Conv2d:
    """A ConvBlock's conv with its batch norm folded in, padded to ``channels`` zero filters, time-last.

    ``first``: the (C, 1, 3, 3) kernel becomes (P, FIRST_CONV_COPIES, 3 mel, 1), copy j of the input being
    the log-mel shifted by j - 1 frames, with LOG10_SCALE folded in.
    """
    bn = block.norm
    assert bn.weight is not None and bn.bias is not None  # affine batch norm (ConvBlock's default)
    assert bn.running_mean is not None and bn.running_var is not None  # it tracks running statistics
    scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    w = block.conv.weight.detach().double() * scale[:, None, None, None]  # (C, C_in, 3 time, 3 mel)
    b = bn.bias.detach().double() - bn.running_mean.double() * scale
    if first:
        conv = nn.Conv2d(FIRST_CONV_COPIES, channels, (3, 1), padding=(1, 0))
        weight = torch.zeros(channels, FIRST_CONV_COPIES, 3, 1, dtype=torch.float64)
        weight[: w.shape[0], :3, :, 0] = w[:, 0] * LOG10_SCALE  # [o, time shift, mel]
    else:
        conv = nn.Conv2d(channels, channels, 3, padding=1)
        weight = torch.zeros(channels, channels, 3, 3, dtype=torch.float64)
        weight[: w.shape[0], : w.shape[1]] = w.transpose(2, 3)  # kernel (mel, time)
    bias = torch.zeros(channels, dtype=torch.float64)
    bias[: b.shape[0]] = b
    assert conv.bias is not None  # nn.Conv2d has a bias by default
    with torch.no_grad():
        conv.weight.copy_(weight.float())
        conv.bias.copy_(bias.float())
    return conv.requires_grad_(False)


def _padded_1x1(src: nn.Conv2d, channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(channels, channels, 1)
    weight = torch.zeros(channels, channels, 1, 1)
    bias = torch.zeros(channels)
    weight[: src.out_channels, : src.in_channels] = src.weight.detach()
    assert src.bias is not None and conv.bias is not None  # 1x1 convs with a bias (Vgg7's lin and sof)
    bias[: src.out_channels] = src.bias.detach()
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    return conv.requires_grad_(False)


def _standard_frontend(v: Vgg7, cfg: Wav2SmallConfig) -> bool:
    """True when a checkpoint's STFT kernels and mel filters are edgeser's (not another checkpoint's)."""
    from ..runtime.frontend import dft_kernels, mel_filterbank

    real, imag = dft_kernels(cfg.n_fft)
    spec, mel = v.spectrogram_extractor, v.logmel_extractor.melW.detach().numpy()
    return (all(np.allclose(conv.weight.detach().numpy()[:, 0], ref, atol=1e-6)
                for conv, ref in ((spec.conv_real, real), (spec.conv_imag, imag)))
            and np.allclose(mel, mel_filterbank(cfg.sampling_rate, cfg.n_fft, cfg.n_mels), atol=1e-6))


class AttentionWeights(nn.Module):
    """The ``softmax`` part: values (B, C, ..) times the softmax over ``dim`` of the ``sof`` logits of x."""

    def __init__(self, sof: nn.Conv2d, dim: int) -> None:
        super().__init__()
        self.sof, self.dim = sof, dim

    def forward(self, x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.sof(x)
        return values * logits.softmax(self.dim)


class _FastFrontend(nn.Module):
    """Waveform (B, T) -> FIRST_CONV_COPIES time-shifted copies of the log-mel (B, 4, M, frames) and the
    log-mel in natural-log units (B, M, frames)."""

    mel_t: torch.Tensor
    amin: torch.Tensor

    def __init__(self, model: Wav2Small) -> None:
        super().__init__()
        v, cfg = model.vgg7, model.cfg
        self.generated = (GeneratedFrontend(cfg.n_fft, cfg.hop_length, cfg.sampling_rate, cfg.n_mels)
                          if _standard_frontend(v, cfg) else None)
        if self.generated is None:  # another checkpoint's kernels or filters: kept as stored
            self.spectrogram_extractor = v.spectrogram_extractor
            self.register_buffer("mel_t", v.logmel_extractor.melW.detach().t().contiguous())  # (n_mels, bins)
        self.register_buffer("amin", v.logmel_extractor.amin.detach().clone())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = prenorm(x)
        power = (self.generated(x) if self.generated is not None
                 else torch.matmul(self.mel_t, self.spectrogram_extractor(x)))  # (B, M, frames)
        log_power = torch.log(torch.maximum(power, self.amin))  # (B, M, frames)
        last = FIRST_CONV_COPIES - 1
        mel = F.pad(log_power[:, None], (1, last - 1))  # frames: one before, the rest after
        return torch.cat([mel[..., j:j - last or None] for j in range(FIRST_CONV_COPIES)], 1), log_power


class _FastBody(nn.Module):
    """Shifted log-mel copies -> conv features (B, P, M/2, frames/2) and the pooling's values (``lin``)."""

    def __init__(self, v: Vgg7, channels: int) -> None:
        super().__init__()
        blocks = [v.l1, v.l2, v.l3, v.l4, v.l5, v.l6, v.l7]
        self.convs = nn.ModuleList(_folded_conv(b, channels, first=i == 0) for i, b in enumerate(blocks))
        self.maxpool = v.maxpool_A  # 3x3, stride 2, pad 1: the same in either layout
        self.lin = _padded_1x1(v.lin, channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for i, conv in enumerate(self.convs):
            x = torch.relu(conv(x))  # (B, P, M, frames)
            if i == 2:
                x = self.maxpool(x)  # (B, P, M/2, frames/2)
        return x, self.lin(x)


class _Head(nn.Module):
    """Weighted values summed over time, and the log-mel -> A/D/V.

    ``time_last`` (the fast layout): the values are (B, P, W, frames) with P >= C padded rows, dropped
    after the sum, and the log-mel is (B, M, frames) in natural-log units; else (B, C, frames, W) and the
    log-mel in dB (B, 1, frames, M).
    """

    def __init__(self, model: Wav2Small, *, time_last: bool, stats_norm: nn.BatchNorm1d | None) -> None:
        super().__init__()
        self.time_last, self.channels = time_last, model.cfg.channels
        self.mlp, self.adv, self.head_softmax = model.mlp, model.adv, bool(model.cfg.head_softmax)
        self.stats_norm = stats_norm

    def forward(self, weighted: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        if self.time_last:
            pooled = weighted.sum(3)[:, : self.channels]  # (B, C, W)
            mel = (mel * LOG10_SCALE).transpose(1, 2)  # (B, frames, M) in dB
        else:
            pooled, mel = weighted.sum(2), mel[:, 0]
        return read_out(head_input(pooled, mel, self.stats_norm), self.mlp, self.adv, self.head_softmax)


class Wav2SmallExportView(nn.Module):
    """A Wav2Small re-parameterised for onnxruntime: the same outputs up to float rounding, faster graph.

    Measured in docs/int8-speed.md (research/int8_speed.py); every change is exact:

    - the log-mel is laid out (B, 1, mel, frames), so convs run along the long time axis (float NCHWc
      kernels are ~1.4x faster on long rows) and the attention softmax is over the last axis;
    - batch norm is folded and conv channels are padded with zero filters to a multiple of
      INT8_CHANNEL_MULTIPLE, so the int8 convs take onnxruntime's direct kernel, not im2col + GEMM;
    - the first conv reads FIRST_CONV_COPIES time-shifted copies of the log-mel with a 3x1 kernel over
      mel instead of a 3x3 kernel over one channel, which int8 kernels run slowly;
    - the 1x1 attention convs are padded too and the pooled map is sliced back to C rows;
    - ``10 * log10`` becomes ``ln``, the factor folded into the first conv;
    - the STFT kernel and mel filters are computed in the graph (:class:`GeneratedFrontend`) when the
      checkpoint's are edgeser's, so the file does not carry them (export with constant folding off:
      ``fold_constants``).
    """

    layout = "fast"
    fold_constants = False
    """Exporters should not fold constants: that would store the generated STFT kernel in the file."""

    def __init__(self, model: Wav2Small) -> None:
        super().__init__()
        v = model.vgg7
        padded = -(-model.cfg.channels // INT8_CHANNEL_MULTIPLE) * INT8_CHANNEL_MULTIPLE
        self.frontend = _FastFrontend(model)
        self.body = _FastBody(v, padded)
        self.softmax = AttentionWeights(_padded_1x1(v.sof, padded), 3)
        stats_norm = copy.deepcopy(v.stats_norm).requires_grad_(False) if v.stats_norm is not None else None
        self.head = _Head(model, time_last=True, stats_norm=stats_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mel, log_power = self.frontend(x)  # (B, 4, M, frames), (B, M, frames)
        x, values = self.body(mel)  # (B, P, M/2, frames/2) each
        return cast(torch.Tensor, self.head(self.softmax(x, values), log_power))


class _PlainBody(nn.Module):
    def __init__(self, v: Vgg7) -> None:
        super().__init__()
        self.blocks = nn.Sequential(v.l1, v.l2, v.l3, v.maxpool_A, v.l4, v.l5, v.l6, v.l7)
        self.lin = v.lin

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # -> (B, C, frames/2, W) each
        x = self.blocks(mel)
        return x, self.lin(x)


class Wav2SmallPlainView(nn.Module):
    """A Wav2Small as trained (its own modules, its layout), grouped into its parts."""

    layout = "plain"

    def __init__(self, model: Wav2Small) -> None:
        super().__init__()
        v = model.vgg7
        self.frontend = LogmelFrontend(v.spectrogram_extractor, v.logmel_extractor)
        self.body = _PlainBody(v)
        self.softmax = AttentionWeights(v.sof, 2)
        self.head = _Head(model, time_last=False, stats_norm=v.stats_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mel = self.frontend(x)  # (B, 1, frames, n_mels)
        x, values = self.body(mel)
        return cast(torch.Tensor, self.head(self.softmax(x, values), mel))
