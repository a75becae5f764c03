"""MobileNet students: MobileNetV4-Conv-Small (arXiv 2404.10518) and MobileNetV3-Small (arXiv 1905.02244).

The Wav2Small paper (arXiv 2408.13920) compares these with Wav2Small. Here each one reads a log-mel
image computed inside the model (the same normalisation and front-end maths as Wav2Small, with
CNN-sized defaults: 25 ms window, 10 ms hop, 64 mel bands) through a one-channel stem, then global
average pooling, the family's post-pooling 1x1 head and a linear layer to arousal, dominance, valence.
Only Conv2d, BatchNorm2d, ReLU, Hardswish, Hardsigmoid, global average pooling, add and mul appear,
so the models export to ONNX (opset 17) and TFLite and quantise to int8.

The block tables follow the papers (MobileNetV4 Table 10, MobileNetV3 Table 2) and the width
rules of timm's ``mobilenetv4_conv_small*`` and ``mobilenetv3_small*``: channels are rounded to
multiples of 8, the stem stays 32 (16) wide below width 1, and the post-pooling head (1280 or 1024)
does not scale with the width. As in the official TensorFlow and timm code, the two FusedIB blocks
of MobileNetV4-Conv-Small are a 3x3 conv and a 1x1 conv, each with its BatchNorm and ReLU.

Parameter counts, measured with :func:`count_parameters` on the defaults (n_fft 400, 64 mels; the
frozen part is the STFT conv pair, 2 x 201 x 400; the mel matrix is a buffer). tests/test_mobilenet.py
checks them:

=============================  =====  ============  ==========
preset                         width  trainable     frozen
=============================  =====  ============  ==========
``mobilenetv4_conv_small``     1.0    2,496,291     160,800
``mobilenetv4_conv_small.075`` 0.75   1,656,179     160,800
``mobilenetv4_conv_small.050`` 0.5    961,219       160,800
``mobilenetv4_conv_small.035`` 0.35   627,651       160,800
``mobilenetv3_small``          1.0    1,520,643     160,800
=============================  =====  ============  ==========

The Wav2Small paper quotes 3.12M parameters for its MobileNetV4-Small without publishing its
front-end, input channels or head, so that number cannot be reproduced here. What can be checked:
built with 3 input channels and 1,000 outputs, this code has the ImageNet counts of the reference
implementations (3,774,024 for MobileNetV4-Conv-Small and 2,238,952 at width 0.5, timm's 3.8M and
2.2M; 2,542,856 for MobileNetV3-Small, torchvision's count); the A/D/V students differ only in the
one-channel stem and the 3-output linear layer (1280 x 3 instead of 1280 x 1000). Of the 2,496,291,
1,231,360 (49%) are the ImageNet-sized 960 -> 1280 post-pooling head; ``head_features=0`` drops it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple, cast

import torch
from torch import nn

from edgeser.errors import InputError

from .frontend import LogmelFilterBank, LogmelFrontend, Spectrogram, prenorm
from .mobilenet_blocks import ConvBnAct, FusedIB, InvertedResidual, UniversalIB, divisible
from .registry import register_model

__all__ = [
    "MobileNetConfig",
    "MobileNetStudent",
    "MobileNetV4ConvSmall",
    "MobileNetV3Small",
    "mobilenetv4_conv_small",
    "mobilenetv3_small",
    "MobileNetExportView",
]

@dataclass
class MobileNetConfig:
    """Hyper-parameters of a MobileNet student (shared by both families)."""

    width: float = 1.0
    """Channel multiplier of the stem (at 1 and above), the blocks and the last 1x1 conv."""
    head_features: int = 1280
    """Channels of the 1x1 conv after global pooling (1280 for V4, 1024 for V3); 0 drops that layer."""
    n_fft: int = 400
    """STFT size (and window length) in samples (25 ms at 16 kHz)."""
    hop_length: int = 160
    """STFT hop in samples (10 ms at 16 kHz)."""
    n_mels: int = 64
    """Mel bands: the width of the log-mel image."""
    sampling_rate: int = 16_000
    """Input rate in Hz."""

    def __post_init__(self) -> None:
        if not 0.1 <= self.width <= 4.0:
            raise InputError(f"width must be between 0.1 and 4, got {self.width}")
        if self.head_features < 0:
            raise InputError(f"head_features must be 0 or more, got {self.head_features}")
        if self.n_fft < 16 or not 0 < self.hop_length <= self.n_fft:
            raise InputError("need n_fft >= 16 and 0 < hop_length <= n_fft, "
                             f"got n_fft {self.n_fft}, hop_length {self.hop_length}")
        if not 0 < self.n_mels <= self.n_fft // 2 + 1:
            raise InputError(f"n_mels must be between 1 and n_fft // 2 + 1, got {self.n_mels}")

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MobileNetConfig:
        """Build from plain JSON values, casting each to its field's type.

        Raises:
            TypeError: a key is not a field.
            InputError: a value is not a number, or out of range.
        """
        types = {f.name: float if f.name == "width" else int for f in fields(cls)}
        unknown = sorted(set(d) - types.keys())
        if unknown:
            raise TypeError(f"unexpected hyper-parameters: {', '.join(unknown)}")
        try:
            values: dict[str, Any] = {k: types[k](v) for k, v in d.items()}
        except (TypeError, ValueError) as exc:
            raise InputError(f"hyper-parameters must be numbers ({exc})") from None
        return cls(**values)


class Fused(NamedTuple):
    """A FusedIB row: kernel, stride, hidden channels, output channels (both scaled by the width)."""

    kernel: int
    stride: int
    hidden: int
    out: int


class UIB(NamedTuple):
    """A UIB row: start and mid depthwise kernels (0: none), stride, expansion ratio, output channels."""

    start: int
    mid: int
    stride: int
    expand: float
    out: int


class Bneck(NamedTuple):
    """A MobileNetV3 row: kernel, expansion size, output channels, SE, hard-swish, stride."""

    kernel: int
    hidden: int
    out: int
    se: bool
    hswish: bool
    stride: int


# MobileNetV4 paper, Table 10 (MNv4-Conv-S), after the 3x3 stride-2 stem of 32 channels.
MNV4_CONV_SMALL: tuple[Fused | UIB, ...] = (
    Fused(3, 2, 32, 32),
    Fused(3, 2, 96, 64),
    UIB(5, 5, 2, 3.0, 96),  # ExtraDW
    *[UIB(0, 3, 1, 2.0, 96)] * 4,  # IB
    UIB(3, 0, 1, 4.0, 96),  # ConvNext-like
    UIB(3, 3, 2, 6.0, 128),  # ExtraDW
    UIB(5, 5, 1, 4.0, 128),  # ExtraDW
    UIB(0, 5, 1, 4.0, 128),  # IB
    UIB(0, 5, 1, 3.0, 128),  # IB
    *[UIB(0, 3, 1, 4.0, 128)] * 2,  # IB
)
MNV4_STEM, MNV4_LAST, MNV4_HEAD = 32, 960, 1280

# MobileNetV3 paper, Table 2 (MobileNetV3-Small), after the 3x3 stride-2 hard-swish stem of 16 channels.
MNV3_SMALL: tuple[Bneck, ...] = (
    Bneck(3, 16, 16, True, False, 2),
    Bneck(3, 72, 24, False, False, 2),
    Bneck(3, 88, 24, False, False, 1),
    Bneck(5, 96, 40, True, True, 2),
    Bneck(5, 240, 40, True, True, 1),
    Bneck(5, 240, 40, True, True, 1),
    Bneck(5, 120, 48, True, True, 1),
    Bneck(5, 144, 48, True, True, 1),
    Bneck(5, 288, 96, True, True, 2),
    Bneck(5, 576, 96, True, True, 1),
    Bneck(5, 576, 96, True, True, 1),
)
MNV3_STEM, MNV3_LAST, MNV3_HEAD = 16, 576, 1024


class MobileNetStudent(nn.Module):
    """Waveform (B, T) float32 at 16 kHz -> (B, 3) arousal, dominance, valence.

    Subclasses build ``stem``, ``blocks`` (ending in the last 1x1 conv) and ``head`` (after pooling).
    """

    arch = ""

    def __init__(self, cfg: MobileNetConfig, *, in_chans: int = 1, num_outputs: int = 3) -> None:
        super().__init__()
        self.cfg = cfg
        self.spectrogram = Spectrogram(cfg.n_fft, cfg.hop_length)
        self.logmel = LogmelFilterBank(sampling_rate=cfg.sampling_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels)
        self.stem, self.blocks, last = self.trunk(in_chans)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head: nn.Module = self.make_head(last, cfg.head_features) if cfg.head_features else nn.Identity()
        self.adv = nn.Linear(cfg.head_features or last, num_outputs)
        for m in (self.stem, self.blocks, self.head, self.adv):
            m.apply(_init_weights)

    def width(self, channels: int) -> int:
        return divisible(channels * self.cfg.width)

    stem_channels = last_channels = 0
    """Stem width (kept below width 1) and the last 1x1 conv's width, before the width multiplier."""
    act: type[nn.Module] = nn.ReLU
    """Activation of the stem and the last 1x1 conv."""

    def trunk(self, in_chans: int) -> tuple[nn.Module, nn.Sequential, int]:
        """(stem, blocks ending in the last 1x1 conv, channels out of the blocks)."""
        stem = self.stem_channels if self.cfg.width < 1 else self.width(self.stem_channels)
        blocks, c = self.make_blocks(stem)
        last = self.width(self.last_channels)
        blocks.append(ConvBnAct(c, last, 1, act=self.act))
        return ConvBnAct(in_chans, stem, 3, 2, act=self.act), nn.Sequential(*blocks), last

    def make_blocks(self, c: int) -> tuple[list[nn.Module], int]:
        """The family's blocks after a stem of ``c`` channels, and the channels out of them."""
        raise NotImplementedError

    def make_head(self, c_in: int, c_out: int) -> nn.Module:
        raise NotImplementedError

    def config(self) -> dict[str, float | int]:
        return self.cfg.to_dict()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Waveform (B, T) -> log-mel (B, 1, frames, n_mels)."""
        return cast(torch.Tensor, self.logmel(self.spectrogram(prenorm(x))))

    def forward_features(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, 1, frames, n_mels) -> A/D/V: the part an int8 accelerator runs."""
        x = self.blocks(self.stem(mel))  # (B, C, frames / 32, n_mels / 32)
        x = self.head(self.pool(x))  # (B, H, 1, 1)
        return cast(torch.Tensor, self.adv(x.flatten(1)))  # (B, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(self.features(x))

    @staticmethod
    def quantisable_parts() -> tuple[str, ...]:
        """The parts its export view names (:data:`edgeser.models.parts.PARTS`): no attention softmax."""
        return ("frontend", "head", "body")

    def export_view(self, layout: str = "plain") -> MobileNetExportView:
        """The same function as a module whose children are its parts; ``layout`` is ignored (one layout)."""
        del layout
        return MobileNetExportView(self).eval()


class _Trunk(nn.Module):
    def __init__(self, model: MobileNetStudent) -> None:
        super().__init__()
        self.stem, self.blocks = model.stem, model.blocks

    def forward(self, mel: torch.Tensor) -> torch.Tensor:  # (B, 1, frames, n_mels) -> (B, C, frames/32, n_mels/32)
        return cast(torch.Tensor, self.blocks(self.stem(mel)))


class _PooledHead(nn.Module):
    def __init__(self, model: MobileNetStudent) -> None:
        super().__init__()
        self.pool, self.head, self.adv = model.pool, model.head, model.adv

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) -> (B, 3)
        return cast(torch.Tensor, self.adv(self.head(self.pool(x)).flatten(1)))


class MobileNetExportView(nn.Module):
    """A MobileNet student grouped into its parts: ``frontend`` (log-mel), ``body`` (stem and blocks), and
    ``head`` (global average pooling, the post-pooling layer, the A/D/V layer)."""

    layout = "plain"

    def __init__(self, model: MobileNetStudent) -> None:
        super().__init__()
        self.frontend = LogmelFrontend(model.spectrogram, model.logmel)
        self.body = _Trunk(model)
        self.head = _PooledHead(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.head(self.body(self.frontend(x))))


class MobileNetV4ConvSmall(MobileNetStudent):
    """MobileNetV4-Conv-Small: FusedIB, ExtraDW, IB and ConvNext-like UIB blocks, ReLU throughout."""

    arch = "mobilenetv4_conv_small"

    stem_channels, last_channels = MNV4_STEM, MNV4_LAST

    def make_blocks(self, c: int) -> tuple[list[nn.Module], int]:
        blocks: list[nn.Module] = []
        for row in MNV4_CONV_SMALL:
            out = self.width(row.out)
            if isinstance(row, Fused):
                blocks.append(FusedIB(c, self.width(row.hidden), out, row.kernel, row.stride))
            else:
                blocks.append(UniversalIB(c, out, start=row.start, mid=row.mid, stride=row.stride,
                                          expand=row.expand))
            c = out
        return blocks, c

    def make_head(self, c_in: int, c_out: int) -> nn.Module:
        return ConvBnAct(c_in, c_out, 1)  # V4: BatchNorm after the post-pooling conv, no bias


class MobileNetV3Small(MobileNetStudent):
    """MobileNetV3-Small: inverted residuals with squeeze-and-excite, ReLU early and hard-swish late."""

    arch = "mobilenetv3_small"

    stem_channels, last_channels, act = MNV3_STEM, MNV3_LAST, nn.Hardswish

    def make_blocks(self, c: int) -> tuple[list[nn.Module], int]:
        blocks: list[nn.Module] = []
        for row in MNV3_SMALL:
            out = self.width(row.out)
            act = nn.Hardswish if row.hswish else nn.ReLU
            blocks.append(InvertedResidual(c, self.width(row.hidden), out, kernel=row.kernel,
                                           stride=row.stride, se=row.se, act=act))
            c = out
        return blocks, c

    def make_head(self, c_in: int, c_out: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.Hardswish())  # V3: bias, no BatchNorm


def _init_weights(m: nn.Module) -> None:
    """He-normal (fan-out) convs, unit BatchNorm, small-normal linear layers: the MobileNet recipe."""
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, 0.0, 0.01)
        nn.init.zeros_(m.bias)


def _v4(**overrides: Any) -> MobileNetV4ConvSmall:
    return MobileNetV4ConvSmall(MobileNetConfig.from_dict(overrides))


@register_model
def mobilenetv4_conv_small(**overrides: Any) -> MobileNetV4ConvSmall:
    """MobileNetV4-Conv-Small at full width (2,496,291 trainable parameters)."""
    return _v4(**overrides)


@register_model(name="mobilenetv4_conv_small.075")
def mobilenetv4_conv_small_075(**overrides: Any) -> MobileNetV4ConvSmall:
    """Width 0.75 (1,656,179 trainable parameters)."""
    return _v4(**{"width": 0.75, **overrides})


@register_model(name="mobilenetv4_conv_small.050")
def mobilenetv4_conv_small_050(**overrides: Any) -> MobileNetV4ConvSmall:
    """Width 0.5, timm's smallest trained MobileNetV4 (961,219 trainable parameters)."""
    return _v4(**{"width": 0.5, **overrides})


@register_model(name="mobilenetv4_conv_small.035")
def mobilenetv4_conv_small_035(**overrides: Any) -> MobileNetV4ConvSmall:
    """Width 0.35 (627,651 trainable parameters)."""
    return _v4(**{"width": 0.35, **overrides})


@register_model
def mobilenetv3_small(**overrides: Any) -> MobileNetV3Small:
    """MobileNetV3-Small at full width (1,520,643 trainable parameters)."""
    return MobileNetV3Small(MobileNetConfig.from_dict({"head_features": MNV3_HEAD, **overrides}))
