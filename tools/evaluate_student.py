"""Score a student against teacher labels (and, for EmoDB, against the category targets).

Reads a labels CSV written by ``edgeser label`` (the teacher's A/D/V per window), runs the student on
the same windows, and prints CCC(student, teacher) per dimension, pooled and per speaker, as a markdown
table. With ``--categories`` (a csv with file, emotion, e.g. the calibration set's ``calibration.csv``)
it also prints the CCC of the teacher and of the student against the NRC VAD targets of the categories.

Usage::

    edgeser label edgeser/assets/calibration/calibration.csv --out scratch/cal_labels.csv
    python tools/evaluate_student.py --labels scratch/cal_labels.csv \
        --student edgeser/assets/wav2small.default.safetensors \
        --categories edgeser/assets/calibration/calibration.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from edgeser.defaults import CATEGORY_ADV as NRC_VAD
from edgeser.distill import load_windows
from edgeser.label import read_labels
from edgeser.metrics import DIMENSIONS, ccc


def predict(student: Path, windows: np.ndarray) -> np.ndarray:
    """The student's A/D/V for (N, T) windows."""
    import torch

    from edgeser import models

    model = models.load(student)
    with torch.no_grad():
        batches = [model(torch.from_numpy(windows[i : i + 64])).numpy() for i in range(0, len(windows), 64)]
    return np.concatenate(batches)


def row(name: str, values: np.ndarray) -> str:
    return f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + f" | {np.mean(values):.3f} |"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--labels", type=Path, required=True, help="teacher labels CSV")
    p.add_argument("--student", type=Path, required=True, help="student checkpoint (.safetensors)")
    p.add_argument("--categories", type=Path, help="csv with file and emotion columns (EmoDB categories)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    table = read_labels(args.labels)
    windows = load_windows(table)
    pred = predict(args.student, windows)
    print(f"{len(table)} windows of {len(set(table.files))} files; student {args.student.name}\n")
    print("| CCC(student, teacher) | " + " | ".join(DIMENSIONS) + " | mean |")
    print("|---|" + "---:|" * (len(DIMENSIONS) + 1))
    print(row("all", ccc(pred, table.targets)))
    speakers = np.array(table.speakers)
    for s in sorted(set(table.speakers) - {""}):
        print(row(f"speaker {s}", ccc(pred[speakers == s], table.targets[speakers == s])))
    if args.categories:
        with args.categories.open(newline="", encoding="utf-8") as fh:
            emotion = {Path(r["file"]).name: r["emotion"] for r in csv.DictReader(fh)}
        truth = np.array([NRC_VAD[emotion[f.name]] for f in table.files], np.float32)
        print("\n| CCC vs category targets | " + " | ".join(DIMENSIONS) + " | mean |")
        print("|---|" + "---:|" * (len(DIMENSIONS) + 1))
        print(row("teacher", ccc(table.targets, truth)))
        print(row("student", ccc(pred, truth)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
