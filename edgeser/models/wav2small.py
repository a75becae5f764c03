"""Wav2Small (arXiv 2408.13920): a VGG-7 on a 26-band log-mel computed inside the model.

State-dict keys follow the published checkpoint (``vgg7.l1.conv.weight`` ... ``adv.bias``), so a local
copy of the published ``model.safetensors`` loads strictly with :func:`edgeser.models.load`.

Parameter counts, measured with :func:`count_parameters` (tests/test_models.py checks them):

==================  ========  ===========  ======================================
preset              channels  trainable    frozen (STFT convs; mel is a buffer)
==================  ========  ===========  ======================================
``wav2small``       13        10,806       4,224 (+ 858-value mel buffer)
``wav2small.wide``  32        64,291       16,640 (+ 4,160-value mel buffer)
==================  ========  ===========  ======================================

The paper quotes 72K parameters for its variant, whose exact layout is not published; the ``wide``
preset is edgeser's own widening of the published layout (n_fft 128, 64 mel bands), not that variant.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .frontend import LogmelFilterBank, Spectrogram, prenorm
from .registry import register_model

__all__ = ["Wav2SmallConfig", "Wav2Small", "wav2small", "wav2small_wide"]


@dataclass
class Wav2SmallConfig:
    """Hyper-parameters of a Wav2Small student."""

    channels: int = 13
    """Conv channels; the mel bands are twice this, so the pooled map is square (channels x channels)."""
    n_fft: int = 64
    """STFT size (and window length) in samples."""
    hop_length: int = 32
    """STFT hop in samples (2 ms at 16 kHz)."""
    sampling_rate: int = 16_000
    """Input rate in Hz."""

    @property
    def n_mels(self) -> int:
        return 2 * self.channels

    @property
    def hidden(self) -> int:
        return 2 * self.channels * self.channels

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, int]) -> Wav2SmallConfig:
        return cls(**{k: int(v) for k, v in d.items()})


class ConvBlock(nn.Module):
    """Conv2d 3x3 (no bias) -> BatchNorm2d -> ReLU. Keys ``conv.*``, ``norm.*`` as published."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm(self.conv(x)))


class Vgg7(nn.Module):
    """Front-end, seven conv blocks with one max-pool, attention pooling over time, Gram feature."""

    def __init__(self, cfg: Wav2SmallConfig) -> None:
        super().__init__()
        c = cfg.channels
        self.spectrogram_extractor = Spectrogram(cfg.n_fft, cfg.hop_length)
        self.logmel_extractor = LogmelFilterBank(sampling_rate=cfg.sampling_rate, n_fft=cfg.n_fft,
                                                 n_mels=cfg.n_mels)
        self.l1, self.l2, self.l3 = ConvBlock(1, c), ConvBlock(c, c), ConvBlock(c, c)
        self.maxpool_A = nn.MaxPool2d(3, stride=2, padding=1)
        self.l4, self.l5, self.l6, self.l7 = (ConvBlock(c, c) for _ in range(4))
        self.lin = nn.Conv2d(c, c, 1)
        self.sof = nn.Conv2d(c, c, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Waveform (B, T) -> log-mel (B, 1, frames, n_mels)."""
        return self.logmel_extractor(self.spectrogram_extractor(prenorm(x)))

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, 1, frames, n_mels) -> feature (B, 2 * C * C)."""
        x = self.l3(self.l2(self.l1(x)))  # (B, C, frames, M)
        x = self.maxpool_A(x)  # (B, C, frames/2, M/2 = C)
        x = self.l7(self.l6(self.l5(self.l4(x))))
        x = self.lin(x) * self.sof(x).softmax(2)  # attention weights over time
        x = x.sum(2)  # (B, C, C)
        x = torch.cat([x, torch.bmm(x, x.transpose(1, 2))], 2)  # (B, C, 2C): pooled map and its Gram matrix
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.features(x))


class Wav2Small(nn.Module):
    """Waveform (B, T) float32 at 16 kHz -> (B, 3) arousal, dominance, valence."""

    arch = "wav2small"

    def __init__(self, cfg: Wav2SmallConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or Wav2SmallConfig()
        self.vgg7 = Vgg7(self.cfg)
        self.adv = nn.Linear(self.cfg.hidden, 3)

    def config(self) -> dict[str, int]:
        return self.cfg.to_dict()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adv(self.vgg7(x))

    def forward_features(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, 1, frames, n_mels) -> A/D/V: the part an int8 accelerator runs."""
        return self.adv(self.vgg7.body(mel))


@register_model
def wav2small(**overrides: int) -> Wav2Small:
    """The published 13-channel layout (about 10.8K trainable parameters)."""
    return Wav2Small(Wav2SmallConfig(**overrides))


@register_model(name="wav2small.wide")
def wav2small_wide(**overrides: int) -> Wav2Small:
    """A 32-channel widening (about 64K trainable parameters), closer in size to the paper's 72K variant."""
    return Wav2Small(Wav2SmallConfig(**{"channels": 32, "n_fft": 128, **overrides}))
