"""Wav2Small front-end in torch: waveform normalisation, STFT as a frozen conv, log-mel.

The numbers are the published Wav2Small ones (periodic Hann window, Slaney mel scale with Slaney
area normalisation, power spectrum, 10*log10 with a 1e-10 floor). The same maths in numpy lives in
:mod:`edgeser.runtime.frontend`, so a device can run the front-end on its CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from ..runtime.frontend import NORM_EPS, dft_kernels, mel_filterbank

__all__ = ["prenorm", "Spectrogram", "LogmelFilterBank"]


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
        real = self.conv_real(x)  # (B, F, frames)
        imag = self.conv_imag(x)
        return real**2 + imag**2  # (B, F, frames)


class LogmelFilterBank(nn.Module):
    """Mel projection of a power spectrogram, then ``10 * log10(max(x, 1e-10))``."""

    def __init__(self, *, sampling_rate: int = 16_000, n_fft: int = 64, n_mels: int = 26) -> None:
        super().__init__()
        self.register_buffer("melW", torch.from_numpy(mel_filterbank(sampling_rate, n_fft, n_mels)))
        self.register_buffer("amin", torch.tensor([1e-10]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, F, frames) -> (B, 1, frames, n_mels)
        x = torch.matmul(x[:, None, :, :].transpose(2, 3), self.melW)
        x = torch.maximum(x, self.amin)
        return 10.0 * torch.log10(x)
