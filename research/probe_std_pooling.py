"""Probe: a Wav2Small that also pools an attention-weighted standard deviation over time.

The embedded teacher's features are means *and standard deviations* over time of its frame descriptors
(docs/model-cards/reference-teacher.md); a Wav2Small pools a weighted mean only. This probe registers
``wav2small.std`` in-process (F3's layout plus ``sqrt(E_w[lin^2] - E_w[lin]^2)`` of the attention
pooling, C x W more features into the linear head) and distils it with F3's recipe: the shipped
default's, read from its metadata (``edgeser.distill.config_of``; ``tools/train_default_student.sh``:
n_fft 512, hop 256, ccc+mse, 64 x 1,500 windows, lr 3e-3, EMA 0.998, online default teacher, noise 0.6
from 5 dB, speed 0.5, mixing 0.5, validation speakers 12 and 09), less its softmax head and speech
statistics (``head_hidden``, ``head_softmax``, ``shape_stats``). ``--baseline`` trains F3's plain layout
with the same code, e.g. for another seed.

It is not exported anywhere (no export path knows the extra pooling); the measured result is in
research/default-student-runs.md (run P1: no gain).

    python research/probe_std_pooling.py --labels labels_huge.csv --out std0.safetensors --seed 0
    python research/probe_std_pooling.py --labels labels_huge.csv --out f3s1.safetensors --seed 1 --baseline
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any


def register() -> None:
    """Register ``wav2small.std`` with the model registry of this process."""
    import torch
    from torch import nn

    from edgeser.models import register_model
    from edgeser.models.wav2small import Wav2Small, Wav2SmallConfig

    class Wav2SmallStd(Wav2Small):
        arch = "wav2small.std"

        def __init__(self, cfg: Wav2SmallConfig | None = None) -> None:
            super().__init__(cfg)
            self.adv = nn.Linear(self.cfg.hidden + self.cfg.channels * self.cfg.pooled_width, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            v = self.vgg7
            h = v.convs(v.features(x))
            weights, values = v.sof(h).softmax(2), v.lin(h)
            mean = (values * weights).sum(2)
            std = torch.sqrt(torch.relu((values * values * weights).sum(2) - mean * mean) + 1e-6)
            return self.adv(torch.cat([v.with_gram(mean), std.flatten(1)], 1))

    @register_model(name="wav2small.std")
    def wav2small_std(**overrides: Any) -> Wav2SmallStd:
        return Wav2SmallStd(Wav2SmallConfig(**overrides))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=Path, required=True, help="labels CSV written by the default teacher")
    ap.add_argument("--out", type=Path, required=True, help="best checkpoint (.safetensors)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline", action="store_true", help="train the plain default layout instead")
    args = ap.parse_args(argv)

    from common import F3_LESS, default_recipe

    from edgeser.distill import distill

    register()
    # the settings the shipped default was distilled with, less its softmax head and speech statistics: F3's
    recipe = default_recipe(without=F3_LESS)
    config = replace(recipe, student=recipe.student if args.baseline else "wav2small.std", seed=args.seed)
    result = distill(args.labels, args.out, config=config)
    print(f"best epoch {result.best_epoch}: validation CCC {result.best_ccc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
