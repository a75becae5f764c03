"""Probe how much a nonlinear head adds on top of a trained Wav2Small's features (model card evidence).

Freezes a student, computes its 2 C^2 feature for every labelled window, and fits heads on the
training speakers' windows with the teacher's labels (no augmentation beyond the copies in the labels
file): the published linear head, a hidden ReLU layer of several widths (``head_hidden``), and a
softmax over K learnt prototypes. Prints CCC(head, teacher) per dimension on the validation speakers
(all windows, and their clean EmoDB clips) and, with ``--eval-labels``, on another labels file (the
calibration speakers). Fitting runs on cached features, a minute or two per head on one core.

Usage::

    python research/probe_student_heads.py --student scratch/arch/F3/student.safetensors \\
        --labels scratch/student/labels_huge.csv --val-speakers 09 12 \\
        --eval-labels scratch/student/cal_labels.csv --heads linear relu:16 relu:32 softmax:7
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def features(student: Path, labels: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(feature, teacher A/D/V, speaker, is-clean) per labelled window; clean = a file under emodb/audio."""
    import torch

    from edgeser import models
    from edgeser.distill import load_windows
    from edgeser.label import read_labels

    model = models.load(student).eval()
    table = read_labels(labels)
    windows = load_windows(table, int(round(table.duration_s[0] * model.cfg.sampling_rate)))
    with torch.no_grad():
        f = np.concatenate([model.vgg7(torch.from_numpy(windows[i:i + 256])).numpy()
                            for i in range(0, len(windows), 256)])
    clean = np.array(["emodb/audio" in Path(p).as_posix() for p in table.files])
    return f, np.asarray(table.targets, np.float32), np.asarray(table.speakers), clean


def make_head(spec: str, width: int):
    import torch
    from torch import nn

    kind, _, arg = spec.partition(":")
    if kind == "linear":
        return nn.Linear(width, 3)
    if kind == "relu":
        return nn.Sequential(nn.Linear(width, int(arg)), nn.ReLU(), nn.Linear(int(arg), 3))
    if kind == "softmax":
        class Prototypes(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.logits, self.table = nn.Linear(width, int(arg)), nn.Linear(int(arg), 3)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.table(self.logits(x).softmax(1))

        return Prototypes()
    raise SystemExit(f"unknown head '{spec}' (linear, relu:N, softmax:K)")


def fit(head, x, y, *, epochs: int, lr: float, seed: int):
    """AdamW with a one-cycle schedule on CCC + MSE loss, batch 64, like ``edgeser distill``'s ccc+mse."""
    import torch

    from edgeser.distill.loss import _loss

    torch.manual_seed(seed)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * -(-len(x) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            _loss("ccc+mse", head(x[idx]), y[idx], torch.ones(3)).backward()
            opt.step()
            sched.step()
    return head.eval()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--student", type=Path, required=True)
    ap.add_argument("--labels", type=Path, required=True, help="training labels (edgeser label CSV)")
    ap.add_argument("--val-speakers", nargs="+", required=True)
    ap.add_argument("--eval-labels", type=Path, help="another labels CSV to score on (e.g. calibration speakers)")
    ap.add_argument("--heads", nargs="+", default=["linear", "relu:16", "relu:32", "softmax:7"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--lr", type=float, default=3e-3)
    args = ap.parse_args(argv)

    import torch

    from edgeser.metrics import ccc

    torch.set_num_threads(1)
    f, y, spk, clean = features(args.student, args.labels)
    val = np.isin(spk, args.val_speakers)
    mean, std = f[~val].mean(0), f[~val].std(0) + 1e-6
    norm = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
    sets = {"validation": (norm(f[val]), y[val]), "validation clean": (norm(f[val & clean]), y[val & clean])}
    if args.eval_labels:
        fe, ye, _, _ = features(args.student, args.eval_labels)
        sets[args.eval_labels.name] = (norm(fe), ye)
    print(f"student {args.student}; {int((~val).sum())} training, {int(val.sum())} validation windows")
    print("| head | seed | " + " | ".join(f"{k} A / D / V" for k in sets) + " |")
    print("|---|---:|" + "---|" * len(sets))
    for spec in args.heads:
        for seed in args.seeds:
            head = fit(make_head(spec, f.shape[1]), norm(f[~val]), y[~val], epochs=args.epochs, lr=args.lr, seed=seed)
            cells = []
            with torch.no_grad():
                for x, t in sets.values():
                    p = head(torch.from_numpy(x)).numpy()
                    cells.append(" / ".join(f"{float(np.ravel(ccc(p[:, d], t[:, d]))[0]):.3f}" for d in range(3)))
            print(f"| {spec} | {seed} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
