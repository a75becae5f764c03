"""MobileNet building blocks: conv-BN-activation, squeeze-and-excite, the MobileNetV4 FusedIB and universal
inverted bottleneck, the MobileNetV3 inverted residual, and the channel rounding rule they share."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CHANNEL_DIVISOR", "SE_RATIO", "divisible", "ConvBnAct", "SqueezeExcite", "FusedIB", "UniversalIB",
           "InvertedResidual"]

CHANNEL_DIVISOR = 8
"""Channel counts are rounded to multiples of this (the MobileNet ``make_divisible`` rule)."""
SE_RATIO = 0.25
"""Squeeze-and-excite bottleneck, as a fraction of the expanded channels (MobileNetV3)."""


def divisible(v: float, divisor: int = CHANNEL_DIVISOR) -> int:
    """Round to the nearest multiple of ``divisor`` (at least ``divisor``), never more than 10% down."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class ConvBnAct(nn.Sequential):
    """Conv2d (no bias, 'same' padding) -> BatchNorm2d -> optional activation."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, *, groups: int = 1,
                 act: type[nn.Module] | None = nn.ReLU) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        if act is not None:
            self.act = act()


class SqueezeExcite(nn.Module):
    """Channel gate: global average -> 1x1 conv -> ReLU -> 1x1 conv -> hard sigmoid -> scale."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.pool(x)  # (B, C, 1, 1)
        s = nn.functional.hardsigmoid(self.expand(torch.relu(self.reduce(s))))
        return x * s


class FusedIB(nn.Sequential):
    """MobileNetV4 fused inverted bottleneck: full kxk conv to ``mid`` channels, then 1x1 to ``out``.

    Both convs have BatchNorm and ReLU, as the official code's ``convbn`` pair (the paper draws the
    projection linear; the parameter count is the same).
    """

    def __init__(self, c_in: int, mid: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.fused = ConvBnAct(c_in, mid, kernel, stride)
        self.proj = ConvBnAct(mid, c_out, 1)


class UniversalIB(nn.Module):
    """MobileNetV4 universal inverted bottleneck (UIB).

    Optional depthwise ``start`` conv (no activation), 1x1 expansion, optional depthwise ``mid`` conv,
    linear 1x1 projection; a residual when the shape is kept. (start, mid) kernels pick the kind:
    both: ExtraDW; mid only: IB (the MobileNetV2 block); start only: ConvNext-like; neither: FFN.
    The stride sits on the mid conv when there is one, else on the start conv.
    """

    def __init__(self, c_in: int, c_out: int, *, start: int, mid: int, stride: int, expand: float) -> None:
        super().__init__()
        hidden = divisible(c_in * expand)
        self.residual = stride == 1 and c_in == c_out
        self.dw_start = (ConvBnAct(c_in, c_in, start, 1 if mid else stride, groups=c_in, act=None)
                         if start else nn.Identity())
        self.pw_exp = ConvBnAct(c_in, hidden, 1)
        self.dw_mid = ConvBnAct(hidden, hidden, mid, stride, groups=hidden) if mid else nn.Identity()
        self.pw_proj = ConvBnAct(hidden, c_out, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.pw_proj(self.dw_mid(self.pw_exp(self.dw_start(x))))
        return x + y if self.residual else y


class InvertedResidual(nn.Module):
    """MobileNetV3 bottleneck: 1x1 expansion (skipped when it would not widen), depthwise kxk,
    optional squeeze-and-excite, linear 1x1 projection; a residual when the shape is kept."""

    def __init__(self, c_in: int, hidden: int, c_out: int, *, kernel: int, stride: int, se: bool,
                 act: type[nn.Module]) -> None:
        super().__init__()
        self.residual = stride == 1 and c_in == c_out
        self.pw_exp = ConvBnAct(c_in, hidden, 1, act=act) if hidden != c_in else nn.Identity()
        self.dw = ConvBnAct(hidden, hidden, kernel, stride, groups=hidden, act=act)
        self.se = SqueezeExcite(hidden, divisible(hidden * SE_RATIO)) if se else nn.Identity()
        self.pw_proj = ConvBnAct(hidden, c_out, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.pw_proj(self.se(self.dw(self.pw_exp(x))))
        return x + y if self.residual else y
