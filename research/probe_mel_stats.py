"""Probe: a Wav2Small whose head also reads the mean and standard deviation of its log-mel over speech frames.

The embedded teacher's features are means and standard deviations over *active* frames (within 35 dB of
the loudest). A 64-unit MLP fitted to the teacher's labels on such statistics of a Wav2Small's own
26-band, 512-point log-mel (each band and its 2-frame delta, over frames within 35 dB of the loudest)
follows the teacher's valence on the validation speakers at 0.753 once each frame's mean over bands
is removed (0.609 without; ``research/probe_statistics_mlp.py``, three seeds), where every Wav2Small had
stayed at 0.63-0.75: the pooling is an
attention-weighted mean of conv features, with no second moments, and must learn to skip silence (a
fifth of EmoDB's clips end in zero padding, -100 dB after the log). This probe adds those statistics,
with a soft speech mask (a sigmoid 2 dB wide at 35 dB under the loudest frame), standardised by a
BatchNorm1d, beside the 338-wide feature before the head.

It registers ``wav2small.stats`` in-process and distils it with the recipe of KL1 (the default before
the library had the statistics: a 512-point STFT and the 8-row softmax head) and a seed; ``--centre``
takes each frame's log-mel less its mean over bands (the spectral shape, as MFCCs without c0) and a
frame's loudness from its total power (the runs c1 and s1 in research/default-student-runs.md:
with ``--centre`` validation valence rose from 0.731 to 0.819). The library has the ``--centre`` form
since (``--student-config shape_stats=1``, :func:`edgeser.models.wav2small.shape_stats`, keys
``vgg7.stats_norm.*`` for this probe's ``stats_norm.*``; its loudness is a LOG-free interpolation within
0.26 dB of this probe's, so that int8 accelerators run it), which every exporter handles; this probe stays
to replay the runs.

    python research/probe_mel_stats.py --labels labels_huge.csv --out c1.safetensors --seed 1 --centre
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

SPEECH_DB = 35.0
"""Frames more than this far under the loudest frame (band maximum, dB) count as silence."""


def register(centre: bool = False) -> None:
    """Register ``wav2small.stats`` with the model registry of this process; ``centre``: the statistics are
    of each frame's log-mel less its mean over bands (the spectral shape, as MFCCs without c0), and a frame's
    loudness is its total power."""
    import torch
    from torch import nn

    from edgeser.models import register_model
    from edgeser.models.wav2small import Wav2Small, Wav2SmallConfig
    from edgeser.models.wav2small_head import read_out as _read_out

    def masked_stats(x: torch.Tensor, w: torch.Tensor) -> list[torch.Tensor]:
        """x (B, F, M), w (B, F) -> weighted mean and standard deviation over frames, each (B, M)."""
        w = w[:, :, None]
        n = w.sum(1).clamp_min(1e-3)
        mean = (w * x).sum(1) / n
        var = (w * (x - mean[:, None]) ** 2).sum(1) / n
        return [mean, torch.sqrt(var + 1e-4)]

    class Wav2SmallStats(Wav2Small):
        arch = "wav2small.stats"

        def __init__(self, cfg: Wav2SmallConfig | None = None) -> None:
            super().__init__(cfg)
            width = 4 * self.cfg.n_mels
            self.stats_norm = nn.BatchNorm1d(width)
            hidden = self.cfg.head_hidden
            if hidden:
                self.mlp = nn.Linear(self.cfg.hidden + width, hidden)
            else:
                self.adv = nn.Linear(self.cfg.hidden + width, 3)

        def stats(self, mel: torch.Tensor) -> torch.Tensor:
            m = mel[:, 0]  # (B, F, M)
            if centre:
                e = torch.logsumexp(m * (math.log(10.0) / 10.0), 2) * (10.0 / math.log(10.0))
                m = m - m.mean(2, keepdim=True)
            else:
                e = m.amax(2)
            w = torch.sigmoid((e - e.amax(1, keepdim=True) + SPEECH_DB) / 2.0)
            d = m[:, 2:] - m[:, :-2]
            return torch.cat(masked_stats(m, w) + masked_stats(d, w[:, 2:] * w[:, :-2]), 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mel = self.vgg7.features(x)
            feature = torch.cat([self.vgg7.body(mel), self.stats_norm(self.stats(mel))], 1)
            return _read_out(feature, self.mlp, self.adv, bool(self.cfg.head_softmax))

    @register_model(name="wav2small.stats")
    def wav2small_stats(**overrides: Any) -> Wav2SmallStats:
        return Wav2SmallStats(Wav2SmallConfig(**overrides))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=Path, required=True, help="labels CSV written by the default teacher")
    ap.add_argument("--out", type=Path, required=True, help="best checkpoint (.safetensors)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--centre", action="store_true",
                    help="statistics of the spectral shape (log-mel less its mean over bands)")
    args = ap.parse_args(argv)

    from common import default_recipe

    from edgeser.distill import distill

    register(args.centre)
    # KL1's recipe: the shipped default's, less the statistics the library has since
    recipe = default_recipe(without=("shape_stats",))
    result = distill(args.labels, args.out, config=replace(recipe, student="wav2small.stats", seed=args.seed))
    print(f"best epoch {result.best_epoch}: validation CCC {result.best_ccc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
