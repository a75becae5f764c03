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

The embedded default student is ``wav2small`` with ``n_fft=512, hop_length=256, head_hidden=8,
head_softmax=1, shape_stats=1`` (13,568 trainable parameters; 263,168 frozen STFT weights, which
checkpoints and ONNX exports rebuild instead of storing): docs/model-cards/wav2small-default.md measures why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from ..errors import InputError
from .frontend import LogmelFilterBank, Spectrogram, prenorm
from .parts import PARTS
from .registry import register_model
from .wav2small_head import head_input, read_out, with_gram

if TYPE_CHECKING:
    from .wav2small_export import Wav2SmallExportView, Wav2SmallPlainView

__all__ = ["Wav2SmallConfig", "Wav2Small", "wav2small", "wav2small_wide"]


@dataclass
class Wav2SmallConfig:
    """Hyper-parameters of a Wav2Small student."""

    channels: int = 13
    """Conv channels; by default the mel bands are twice this, so the pooled map is square (channels x channels)."""
    n_fft: int = 64
    """STFT size (and window length) in samples."""
    hop_length: int = 32
    """STFT hop in samples (2 ms at 16 kHz)."""
    sampling_rate: int = 16_000
    """Input rate in Hz."""
    head_hidden: int = 0
    """Width of a ReLU layer between the C (W + C) feature (W: pooled mel rows) and the A/D/V outputs
    (keys ``mlp.*``); 0: the published linear head. Pooling averages over time, so without it the only
    per-utterance nonlinearity is the Gram matrix (docs/model-cards/wav2small-default.md measures what the
    layer is worth)."""
    head_softmax: int = 0
    """1: the ``head_hidden`` layer ends in a softmax instead of a ReLU, so the outputs are a weighted mean of
    ``head_hidden`` learnt A/D/V rows (the columns of ``adv.weight``, initialised in 0.2..0.8) plus
    ``adv.bias``: the form of a teacher that answers with category posteriors times a table. 0: ReLU."""
    shape_stats: int = 0
    """1: the head also reads :func:`~.wav2small_head.shape_stats` of the log-mel (the mean and standard
    deviation, over speech frames, of each frame's spectral shape and of its 2-frame delta: ``4 * n_mels``
    values, standardised by a batch norm, keys ``vgg7.stats_norm.*``) beside the pooled feature. The pooling
    is a weighted mean of conv features, with no second moments, and must learn to skip silence; the
    teacher's features are exactly such statistics (docs/model-cards/wav2small-default.md measures what they
    are worth)."""
    mel_bands: int = 0
    """Log-mel bands; 0: twice ``channels`` (the published layout). Any other count makes the pooled map
    channels x ceil(mel_bands / 2) and the feature ``channels * (ceil(mel_bands / 2) + channels)`` wide; with a
    512-point STFT, 64 bands are 46 Hz apart below 1 kHz, close enough to resolve the harmonics of most voices."""

    def __post_init__(self) -> None:
        if self.channels < 1:
            raise InputError(f"channels must be 1 or more, got {self.channels}")
        if self.head_hidden < 0:
            raise InputError(f"head_hidden must be 0 or more, got {self.head_hidden}")
        if self.head_softmax not in (0, 1) or (self.head_softmax and self.head_hidden < 2):
            raise InputError(f"head_softmax must be 0, or 1 with head_hidden 2 or more; got head_softmax "
                             f"{self.head_softmax} with head_hidden {self.head_hidden}")
        if self.shape_stats not in (0, 1):
            raise InputError(f"shape_stats must be 0 or 1, got {self.shape_stats}")
        if self.mel_bands < 0 or 0 < self.mel_bands < 2 or 2 * self.mel_bands > self.n_fft:
            raise InputError(f"mel_bands must be 0 (twice channels) or 2..n_fft/2 ({self.n_fft // 2}), "
                             f"got {self.mel_bands}")

    @property
    def n_mels(self) -> int:
        return self.mel_bands or 2 * self.channels

    @property
    def pooled_width(self) -> int:
        """Mel rows after the max-pool (3x3, stride 2, pad 1): the pooled map is channels x this."""
        return (self.n_mels + 1) // 2

    @property
    def hidden(self) -> int:
        """Width of the feature: the pooled map, its channels x channels Gram matrix and (``shape_stats``)
        the 4 x n_mels speech statistics."""
        return self.channels * (self.pooled_width + self.channels) + 4 * self.n_mels * self.shape_stats

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
    """Front-end, seven conv blocks with one max-pool, attention pooling over time, Gram feature (and, with
    ``shape_stats``, the speech statistics of the log-mel)."""

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
        self.stats_norm = nn.BatchNorm1d(4 * cfg.n_mels) if cfg.shape_stats else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Waveform (B, T) -> log-mel (B, 1, frames, n_mels)."""
        return cast(torch.Tensor, self.logmel_extractor(self.spectrogram_extractor(prenorm(x))))

    def convs(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, 1, frames, n_mels) -> conv features (B, C, frames/2, W), before the attention pooling."""
        x = self.l3(self.l2(self.l1(x)))  # (B, C, frames, M)
        x = self.maxpool_A(x)  # (B, C, frames/2, W = ceil(M/2); C by default)
        return cast(torch.Tensor, self.l7(self.l6(self.l5(self.l4(x)))))

    with_gram = staticmethod(with_gram)

    def feature(self, pooled: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """Pooled map (B, C, W) and the log-mel in dB (B, frames, n_mels) -> the head's input: the map, its
        Gram matrix and (``shape_stats``) the standardised speech statistics of the log-mel."""
        return head_input(pooled, mel, self.stats_norm)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, 1, frames, n_mels) -> feature (B, hidden)."""
        y = self.convs(x)
        y = self.lin(y) * self.sof(y).softmax(2)  # attention weights over time
        return self.feature(y.sum(2), x[:, 0])  # pooled (B, C, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.features(x))


class Wav2Small(nn.Module):
    """Waveform (B, T) float32 at 16 kHz -> (B, 3) arousal, dominance, valence."""

    arch = "wav2small"

    def __init__(self, cfg: Wav2SmallConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or Wav2SmallConfig()
        self.vgg7 = Vgg7(self.cfg)
        self.mlp = nn.Linear(self.cfg.hidden, self.cfg.head_hidden) if self.cfg.head_hidden else None
        self.adv = nn.Linear(self.cfg.head_hidden or self.cfg.hidden, 3)
        if self.cfg.head_softmax:  # prototypes spread over the labels' range; the bias starts at zero
            with torch.no_grad():
                self.adv.weight.copy_(0.2 + 0.6 * torch.rand(self.cfg.head_hidden, 3).t())
                self.adv.bias.zero_()

    def config(self) -> dict[str, int]:
        return self.cfg.to_dict()

    def head(self, feature: torch.Tensor) -> torch.Tensor:
        """Feature (B, C (W + C)) -> (B, 3) A/D/V: the linear head, after the hidden layer when there is one."""
        return read_out(feature, self.mlp, self.adv, bool(self.cfg.head_softmax))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.vgg7(x))

    def forward_features(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, 1, frames, n_mels) -> A/D/V: the part an int8 accelerator runs."""
        return self.head(self.vgg7.body(mel))

    def forward_divide_once(self, x: torch.Tensor, *, logmel_input: bool = False) -> torch.Tensor:
        """:meth:`forward` (or, ``logmel_input``, :meth:`forward_features`) with the pooling divided once.

        The student pools ``SUM_t(lin * softmax_t(logits))``; this computes ``SUM_t(lin * e) / SUM_t(e)`` with
        ``e = exp(logits - MAX_t(logits))``: the same function, with one DIV of the pooled (C x W) map by its
        sums of weights instead of a DIV per frame. Static int8 then has no tiny per-frame quotients to
        saturate and rounds no attention weight on its own (docs/tflite-measurements.md).
        """
        v = self.vgg7
        mel = x if logmel_input else v.features(x)  # (B, 1, frames, n_mels)
        x = v.convs(mel)  # (B, C, frames/2, W)
        logits = v.sof(x)
        e = torch.exp(logits - logits.amax(2, keepdim=True))
        pooled = (v.lin(x) * e).sum(2) / e.sum(2)  # (B, C, W): the pooled map, divided once
        return self.head(v.feature(pooled, mel[:, 0]))

    @staticmethod
    def quantisable_parts() -> tuple[str, ...]:
        """The parts its export views name (:data:`edgeser.models.parts.PARTS`): all four."""
        return PARTS

    def export_view(self, layout: str = "fast") -> Wav2SmallExportView | Wav2SmallPlainView:
        """The same function as a module whose children are its parts, for exporters.

        Args:
            layout: ``fast`` (:class:`~edgeser.models.wav2small_export.Wav2SmallExportView`, laid out for
                onnxruntime) or ``plain`` (the trained layout, the trained modules).

        Raises:
            InputError: an unknown layout.
        """
        from .wav2small_export import Wav2SmallExportView, Wav2SmallPlainView

        views: dict[str, type[Wav2SmallExportView | Wav2SmallPlainView]] = {
            "fast": Wav2SmallExportView, "plain": Wav2SmallPlainView
        }
        if layout not in views:
            raise InputError(f"unknown export layout '{layout}' (supported: {', '.join(views)})")
        return views[layout](self).eval()


@register_model
def wav2small(**overrides: int) -> Wav2Small:
    """The published 13-channel layout (about 10.8K trainable parameters)."""
    return Wav2Small(Wav2SmallConfig(**overrides))


@register_model(name="wav2small.wide")
def wav2small_wide(**overrides: int) -> Wav2Small:
    """A 32-channel widening (about 64K trainable parameters), closer in size to the paper's 72K variant."""
    return Wav2Small(Wav2SmallConfig(**{"channels": 32, "n_fft": 128, **overrides}))
