"""Wav2Small front-end in torch: waveform normalisation, STFT as a frozen conv, log-mel.

The numbers are the published Wav2Small ones (periodic Hann window, Slaney mel scale with Slaney
area normalisation, power spectrum, 10*log10 with a 1e-10 floor). The same maths in numpy lives in
:mod:`edgeser.runtime.frontend`, so a device can run the front-end on its CPU. :class:`GeneratedFrontend`
computes the same mel power with its tables made in the graph, for exports that should not store them.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..runtime.frontend import NORM_EPS, dft_kernels, mel_edges, mel_filterbank

__all__ = ["prenorm", "Spectrogram", "LogmelFilterBank", "LogmelFrontend", "GeneratedFrontend"]


def prenorm(x: torch.Tensor) -> torch.Tensor:
    """Per-utterance normalisation ``(x - mean) / sqrt(var + 1e-7)`` over time. x: (B, T)."""
    x = x - x.mean(1, keepdim=True)
    var = (x * x).mean(1, keepdim=True)
    return x / torch.sqrt(var + NORM_EPS)


class Spectrogram(nn.Module):
    """Power spectrogram as two frozen Conv1d holding the Hann-windowed DFT (real and imaginary parts)."""

    def __init__(self, n_fft: int = 64, hop_length: int = 32) -> None:
        super().__init__()
        real, imag = dft_kernels(n_fft)  # (n_fft // 2 + 1, n_fft) each
        bins = n_fft // 2 + 1
        self.conv_real = nn.Conv1d(1, bins, n_fft, stride=hop_length, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, n_fft, stride=hop_length, bias=False)
        with torch.no_grad():
            self.conv_real.weight.copy_(torch.from_numpy(real)[:, None, :])
            self.conv_imag.weight.copy_(torch.from_numpy(imag)[:, None, :])
        for p in self.parameters():
            p.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, None, :]  # (B, 1, T)
        real: torch.Tensor = self.conv_real(x)  # (B, F, frames)
        imag: torch.Tensor = self.conv_imag(x)
        return real**2 + imag**2  # (B, F, frames)


class LogmelFilterBank(nn.Module):
    """Mel projection of a power spectrogram, then ``10 * log10(max(x, 1e-10))``."""

    melW: torch.Tensor
    amin: torch.Tensor

    def __init__(self, *, sampling_rate: int = 16_000, n_fft: int = 64, n_mels: int = 26) -> None:
        super().__init__()
        self.register_buffer("melW", torch.from_numpy(mel_filterbank(sampling_rate, n_fft, n_mels)))
        self.register_buffer("amin", torch.tensor([1e-10]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, F, frames) -> (B, 1, frames, n_mels)
        x = torch.matmul(x[:, None, :, :].transpose(2, 3), self.melW)
        x = torch.maximum(x, self.amin)
        return 10.0 * torch.log10(x)


class LogmelFrontend(nn.Module):
    """Waveform (B, T) -> log-mel (B, 1, frames, n_mels): normalisation, ``spectrogram``, ``logmel``."""

    def __init__(self, spectrogram: Spectrogram, logmel: LogmelFilterBank) -> None:
        super().__init__()
        self.spectrogram, self.logmel = spectrogram, logmel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.logmel(self.spectrogram(prenorm(x))))


class GeneratedFrontend(nn.Module):
    """Mel power spectrogram (before the log) whose Hann-windowed DFT kernel and mel filters are computed
    in the graph from the input instead of stored: the same function as ``Spectrogram`` followed by the
    mel projection of ``LogmelFilterBank``.

    Exported with constant folding off, the ONNX file then holds a few dozen small ops instead of a
    2 x (n_fft/2 + 1) x n_fft DFT table and an (n_fft/2 + 1) x n_mels filter bank (together 20 KB at
    n_fft 64, 1.1 MB at n_fft 512); onnxruntime folds them once when it loads the model. Only the
    n_mels + 2 mel band edges are stored. Real and imaginary DFT rows run as one convolution; the phase
    index k * n is reduced modulo n_fft before the cosine (exact in float32 up to n_fft 4096), so the
    kernels match the stored ones to float rounding.
    """

    edges: torch.Tensor

    def __init__(self, n_fft: int, hop_length: int, sampling_rate: int, n_mels: int) -> None:
        super().__init__()
        self.n_fft, self.hop_length, self.bin_hz = n_fft, hop_length, sampling_rate / n_fft
        self.register_buffer("edges", torch.from_numpy(mel_edges(sampling_rate, n_mels).astype(np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised waveform (B, T) -> mel power (B, n_mels, frames)."""
        n = torch.cumsum(x.new_ones(self.n_fft), 0) - 1.0  # 0 .. n_fft - 1, derived from x: not a constant
        bins = self.n_fft // 2 + 1
        step = 2.0 * math.pi / self.n_fft
        phase = torch.remainder(n[:bins, None] * n[None, :], float(self.n_fft)) * step
        window = 0.5 - 0.5 * torch.cos(n * step)  # periodic Hann
        kernel = torch.cat([torch.cos(phase) * window, torch.sin(phase) * window])[:, None]  # (2 bins, 1, n_fft)
        y = F.conv1d(x[:, None], kernel, stride=self.hop_length)
        power = y[:, :bins] ** 2 + y[:, bins:] ** 2  # (B, bins, frames)
        e = self.edges
        ramps = e[:, None] - (n[:bins] * self.bin_hz)[None, :]  # (n_mels + 2, bins)
        widths = e[1:] - e[:-1]
        lower = -ramps[:-2] / widths[:-1, None]
        upper = ramps[2:] / widths[1:, None]
        filters = torch.clamp(torch.minimum(lower, upper), min=0.0) * (2.0 / (e[2:] - e[:-2]))[:, None]
        return torch.matmul(filters, power)  # (B, n_mels, frames)
