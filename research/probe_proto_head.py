"""Probe: a Wav2Small whose head is a softmax over learnt A/D/V prototypes instead of a linear map.

The embedded teacher's output is ``softmax(logits / T) @ TABLE``, a posterior-weighted mean of seven
category points (docs/model-cards/reference-teacher.md), and every student follows its valence worst
where that softmax switches sharply (anger against happiness). A linear head can only regress across
such a boundary; this head has the same form as the teacher's output: ``softmax(W f + b) @ P`` with K
learnt prototype rows P (K x 3, initialised uniformly in 0.2..0.8, learnt with the rest), so it can
switch between corners of the A/D/V space as sharply as the features allow. It is trained on the
teacher's A/D/V labels only (the teacher's categories and table are not used).

The probe registers ``wav2small.proto`` in-process and distils it with F3's recipe: the shipped
default's, read from its metadata (``edgeser.distill.config_of``), less its softmax head and speech
statistics (``head_hidden``, ``head_softmax``, ``shape_stats``). The library has the same head since:
``edgeser distill --student-config head_hidden=K --student-config head_softmax=1`` (keys ``mlp.*`` for
this probe's ``adv.*``, and ``adv.weight`` = P transposed with a zero ``adv.bias``; the initial draw
differs), which every exporter handles, and the default students KL1 and KS0 use; this probe stays to
replay runs K1-K3. The measured result is in research/default-student-runs.md (runs K1-K3: a small
gain in mean CCC, valence not past 0.78).

    python research/probe_proto_head.py --labels labels_huge.csv --out proto0.safetensors --seed 0
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

PROTOTYPES = 8
"""Prototype rows of the head (K)."""


def register(prototypes: int = PROTOTYPES) -> None:
    """Register ``wav2small.proto`` (``prototypes`` rows) with the model registry of this process."""
    import torch
    from torch import nn

    from edgeser.models import register_model
    from edgeser.models.wav2small import Wav2Small, Wav2SmallConfig

    class Wav2SmallProto(Wav2Small):
        arch = "wav2small.proto"

        def __init__(self, cfg: Wav2SmallConfig | None = None) -> None:
            super().__init__(cfg)
            self.adv = nn.Linear(self.cfg.hidden, prototypes)
            self.proto = nn.Parameter(0.2 + 0.6 * torch.rand(prototypes, 3))

        def head(self, feature: torch.Tensor) -> torch.Tensor:
            return self.adv(feature).softmax(1) @ self.proto

    @register_model(name="wav2small.proto")
    def wav2small_proto(**overrides: Any) -> Wav2SmallProto:
        return Wav2SmallProto(Wav2SmallConfig(**overrides))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=Path, required=True, help="labels CSV written by the default teacher")
    ap.add_argument("--out", type=Path, required=True, help="best checkpoint (.safetensors)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prototypes", type=int, default=PROTOTYPES, help="prototype rows K (default %(default)s)")
    args = ap.parse_args(argv)

    from common import F3_LESS, default_recipe

    from edgeser.distill import distill

    register(args.prototypes)
    # the settings the shipped default was distilled with, less its softmax head and speech statistics: F3's
    recipe = default_recipe(without=F3_LESS)
    result = distill(args.labels, args.out, config=replace(recipe, student="wav2small.proto", seed=args.seed))
    print(f"best epoch {result.best_epoch}: validation CCC {result.best_ccc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
