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

import copy
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .frontend import LogmelFilterBank, Spectrogram, prenorm
from .registry import register_model

__all__ = ["Wav2SmallConfig", "Wav2Small", "Wav2SmallExportView", "wav2small", "wav2small_wide"]

INT8_CHANNEL_MULTIPLE = 16
"""Conv channels are padded to a multiple of this in the export view: onnxruntime's direct int8 conv
kernel (MlasConvSym, x86) needs at least 16 output channels and multiples of 4 in and out; with 13 it
falls back to im2col + GEMM, slower than the float conv (docs/int8-speed.md)."""
FIRST_CONV_COPIES = 4
"""Time-shifted copies of the log-mel the first conv of the export view reads (3 used, 1 with zero
weights, so the int8 kernel sees a multiple of 4 input channels)."""
LOG10_SCALE = 10.0 / math.log(10.0)
"""``10 * log10(x) == LOG10_SCALE * ln(x)``: folded into the first conv of the export view."""


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
    """1: the head also reads :func:`shape_stats` of the log-mel (the mean and standard deviation, over speech
    frames, of each frame's spectral shape and of its 2-frame delta: ``4 * n_mels`` values, standardised by
    a batch norm, keys ``vgg7.stats_norm.*``) beside the pooled feature. The pooling is a weighted mean of conv
    features, with no second moments, and must learn to skip silence; the teacher's features are
    exactly such statistics (docs/model-cards/wav2small-default.md measures what they are worth)."""
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
        return self.logmel_extractor(self.spectrogram_extractor(prenorm(x)))

    def convs(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, 1, frames, n_mels) -> conv features (B, C, frames/2, W), before the attention pooling."""
        x = self.l3(self.l2(self.l1(x)))  # (B, C, frames, M)
        x = self.maxpool_A(x)  # (B, C, frames/2, W = ceil(M/2); C by default)
        return self.l7(self.l6(self.l5(self.l4(x))))

    @staticmethod
    def with_gram(pooled: torch.Tensor) -> torch.Tensor:
        """Pooled map (B, C, W) -> feature (B, C * (W + C)): the map and its C x C Gram matrix."""
        return torch.cat([pooled, torch.bmm(pooled, pooled.transpose(1, 2))], 2).flatten(1)

    def feature(self, pooled: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """Pooled map (B, C, W) and the log-mel in dB (B, frames, n_mels) -> the head's input: the map, its
        Gram matrix and (``shape_stats``) the standardised speech statistics of the log-mel."""
        return _head_input(pooled, mel, self.stats_norm)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, 1, frames, n_mels) -> feature (B, hidden)."""
        y = self.convs(x)
        y = self.lin(y) * self.sof(y).softmax(2)  # attention weights over time
        return self.feature(y.sum(2), x[:, 0])  # pooled (B, C, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.features(x))


def _head_input(pooled: torch.Tensor, mel: torch.Tensor, stats_norm: nn.BatchNorm1d | None) -> torch.Tensor:
    """Pooled map (B, C, W) and log-mel in dB (B, frames, n_mels) -> the map and its Gram matrix, and the
    speech statistics standardised by ``stats_norm`` when the layout has them (``Vgg7.feature``, the export
    view)."""
    f = Vgg7.with_gram(pooled)
    return f if stats_norm is None else torch.cat([f, stats_norm(shape_stats(mel))], 1)


def _read_out(feature: torch.Tensor, mlp: nn.Linear | None, adv: nn.Linear, softmax: bool) -> torch.Tensor:
    """Feature (B, C (W + C)) -> (B, 3): ``adv``, after ``relu(mlp)`` (``softmax(mlp)`` with ``softmax``)
    when the layout has that layer."""
    if mlp is None:
        return adv(feature)
    hidden = mlp(feature)
    return adv(hidden.softmax(1) if softmax else torch.relu(hidden))


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
        return _read_out(feature, self.mlp, self.adv, bool(self.cfg.head_softmax))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.vgg7(x))

    def forward_features(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, 1, frames, n_mels) -> A/D/V: the part an int8 accelerator runs."""
        return self.head(self.vgg7.body(mel))

    def export_view(self) -> Wav2SmallExportView:
        """The same function, laid out for fast onnxruntime inference (see :class:`Wav2SmallExportView`)."""
        return Wav2SmallExportView(self).eval()


def _folded_conv(block: ConvBlock, channels: int, *, first: bool) -> nn.Conv2d:
    """A ConvBlock's conv with its batch norm folded in, padded to ``channels`` zero filters, time-last.

    ``first``: the (C, 1, 3, 3) kernel becomes (P, FIRST_CONV_COPIES, 3 mel, 1), copy j of the input being
    the log-mel shifted by j - 1 frames, with LOG10_SCALE folded in.
    """
    bn = block.norm
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
    with torch.no_grad():
        conv.weight.copy_(weight.float())
        conv.bias.copy_(bias.float())
    return conv.requires_grad_(False)


def _padded_1x1(src: nn.Conv2d, channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(channels, channels, 1)
    weight = torch.zeros(channels, channels, 1, 1)
    bias = torch.zeros(channels)
    weight[: src.out_channels, : src.in_channels] = src.weight.detach()
    bias[: src.out_channels] = src.bias.detach()
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    return conv.requires_grad_(False)


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

    def __init__(self, n_fft: int, hop_length: int, sampling_rate: int, n_mels: int) -> None:
        super().__init__()
        from ..runtime.frontend import mel_edges

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


def _standard_frontend(v: Vgg7, cfg: Wav2SmallConfig) -> bool:
    """True when a checkpoint's STFT kernels and mel filters are edgeser's (not another checkpoint's)."""
    from ..runtime.frontend import dft_kernels, mel_filterbank

    real, imag = dft_kernels(cfg.n_fft)
    spec, mel = v.spectrogram_extractor, v.logmel_extractor.melW.detach().numpy()
    return (all(np.allclose(conv.weight.detach().numpy()[:, 0], ref, atol=1e-6)
                for conv, ref in ((spec.conv_real, real), (spec.conv_imag, imag)))
            and np.allclose(mel, mel_filterbank(cfg.sampling_rate, cfg.n_fft, cfg.n_mels), atol=1e-6))


class Wav2SmallExportView(nn.Module):
    """A Wav2Small re-parameterised for onnxruntime: the same outputs up to float rounding, faster graph.

    Measured with research/int8_speed.py (research/log.md, docs/int8-speed.md); every change is exact:

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

    fold_constants = False
    """Exporters should not fold constants: that would store the generated STFT kernel in the file."""

    def __init__(self, model: Wav2Small) -> None:
        super().__init__()
        v = model.vgg7
        self.channels = model.cfg.channels
        padded = -(-self.channels // INT8_CHANNEL_MULTIPLE) * INT8_CHANNEL_MULTIPLE
        cfg = model.cfg
        self.generated = (GeneratedFrontend(cfg.n_fft, cfg.hop_length, cfg.sampling_rate, cfg.n_mels)
                          if _standard_frontend(v, cfg) else None)
        if self.generated is None:  # another checkpoint's kernels or filters: kept as stored
            self.spectrogram_extractor = v.spectrogram_extractor
            self.register_buffer("mel_t", v.logmel_extractor.melW.detach().t().contiguous())  # (n_mels, bins)
        self.register_buffer("amin", v.logmel_extractor.amin.detach().clone())
        blocks = [v.l1, v.l2, v.l3, v.l4, v.l5, v.l6, v.l7]
        self.convs = nn.ModuleList(_folded_conv(b, padded, first=i == 0) for i, b in enumerate(blocks))
        self.maxpool = v.maxpool_A  # 3x3, stride 2, pad 1: the same in either layout
        self.lin, self.sof = _padded_1x1(v.lin, padded), _padded_1x1(v.sof, padded)
        self.mlp, self.adv, self.head_softmax = model.mlp, model.adv, bool(cfg.head_softmax)
        self.stats_norm = copy.deepcopy(v.stats_norm).requires_grad_(False) if v.stats_norm is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = prenorm(x)
        power = (self.generated(x) if self.generated is not None
                 else torch.matmul(self.mel_t, self.spectrogram_extractor(x)))  # (B, M, frames)
        log_power = torch.log(torch.maximum(power, self.amin))  # (B, M, frames)
        last = FIRST_CONV_COPIES - 1
        mel = F.pad(log_power[:, None], (1, last - 1))  # frames: one before, the rest after
        x = torch.cat([mel[..., j:j - last or None] for j in range(FIRST_CONV_COPIES)], 1)  # (B, 4, M, frames)
        for i, conv in enumerate(self.convs):
            x = torch.relu(conv(x))  # (B, P, M, frames)
            if i == 2:
                x = self.maxpool(x)  # (B, P, M/2, frames/2)
        x = (self.lin(x) * self.sof(x).softmax(3)).sum(3)[:, : self.channels]  # (B, C, W)
        feature = _head_input(x, (log_power * LOG10_SCALE).transpose(1, 2), self.stats_norm)
        return _read_out(feature, self.mlp, self.adv, self.head_softmax)


@register_model
def wav2small(**overrides: int) -> Wav2Small:
    """The published 13-channel layout (about 10.8K trainable parameters)."""
    return Wav2Small(Wav2SmallConfig(**overrides))


@register_model(name="wav2small.wide")
def wav2small_wide(**overrides: int) -> Wav2Small:
    """A 32-channel widening (about 64K trainable parameters), closer in size to the paper's 72K variant."""
    return Wav2Small(Wav2SmallConfig(**{"channels": 32, "n_fft": 128, **overrides}))
