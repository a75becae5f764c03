"""A quick Wav2Small fitted to EmoDB's categories mapped to PAD, for converter measurements only.

Obsolete: kept only because the earliest TFLite measurements in research/log.md were made on the model it
fits ("w2s_emodb.safetensors"); every current measurement uses the embedded default student.

Not the default student: it stands in for one until edgeser/assets/wav2small.default.safetensors exists,
so that quantisation is measured on a model whose outputs mean something (random init does not).
Targets: each emotion's pleasure/arousal/dominance from Russell & Mehrabian (1977), "Evidence for a
three-factor theory of emotions", J. Research in Personality 11, mapped from -1..1 to 0..1 and ordered
arousal, dominance, valence. Speakers 03 and 08 are held out.

    python research/fit_emodb_pad.py ../shared/data/emodb/labels.csv out.safetensors --epochs 12
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

PAD = {  # pleasure, arousal, dominance (Russell & Mehrabian 1977)
    "anger": (-0.51, 0.59, 0.25), "boredom": (-0.65, -0.62, -0.33), "disgust": (-0.60, 0.35, 0.11),
    "fear": (-0.64, 0.60, -0.43), "happiness": (0.81, 0.51, 0.46), "neutral": (0.0, 0.0, 0.0),
    "sadness": (-0.63, -0.27, -0.33),
}
HELD_OUT = ("03", "08")
WINDOW_SAMPLES = 32_000
BATCH = 32


def _data(labels: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from edgeser.audio import fit_length, load

    rows = list(csv.DictReader(labels.open(encoding="utf-8")))
    x = np.stack([fit_length(load(labels.parent / r["file"]), WINDOW_SAMPLES) for r in rows]).astype(np.float32)
    pad = np.array([PAD[r["emotion"]] for r in rows], dtype=np.float32)
    y = (pad[:, [1, 2, 0]] + 1) / 2  # arousal, dominance, valence in 0..1
    test = np.isin([r["speaker"] for r in rows], HELD_OUT)
    return x, y, test


def _ccc_loss(p, y):  # noqa: ANN001, ANN202 (torch tensors)
    pm, ym = p.mean(0), y.mean(0)
    cov = ((p - pm) * (y - ym)).mean(0)
    return (1 - 2 * cov / (p.var(0, unbiased=False) + y.var(0, unbiased=False) + (pm - ym) ** 2)).mean()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("labels", type=Path, help="EmoDB labels.csv (file, speaker, emotion)")
    p.add_argument("out", type=Path, help="checkpoint to write")
    p.add_argument("--epochs", type=int, default=12)
    args = p.parse_args()
    import torch

    from edgeser.metrics import ccc
    from edgeser.models import create_model, save

    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y, test = _data(args.labels)
    xt, yt = torch.from_numpy(x[~test]), torch.from_numpy(y[~test])
    model = create_model("wav2small")
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), BATCH):
            idx = perm[i:i + BATCH]  # random circular shift and +-5 dB gain
            batch = torch.roll(xt[idx], int(torch.randint(0, 8000, (1,))), 1) * 10 ** (torch.rand(len(idx), 1) - 0.5)
            loss = _ccc_loss(model(batch), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            held = ccc(model(torch.from_numpy(x[test])).numpy(), y[test])
        print(f"epoch {epoch + 1}: held-out CCC A/D/V {np.round(held, 3)} ({time.time() - t0:.0f} s)", flush=True)
    save(model, args.out, extra={"made_by": "research/fit_emodb_pad.py", "epochs": args.epochs})


if __name__ == "__main__":
    main()
