"""Short from-scratch distillation runs that compare Wav2Small layouts on the same labels and schedule.

Produced the layout table of research/default-student-runs.md (8 epochs of 1,000 windows, fixed
labels, seed 0; about 2-10 minutes per layout on the 2-core development VM)::

    python research/compare_student_layouts.py --labels scratch/student/labels_big.csv \\
        --calibration-labels scratch/student/cal_labels.csv --out scratch/arch \\
        --layout 13:64:32 --layout 13:256:128 --layout 24:256:128 --layout 13:512:256

``--layout C:N:H`` is channels, n_fft and hop_length. For each layout it prints the best validation CCC
(speakers 12 and 09), CCC(student, teacher) on the calibration labels (speakers 11 and 14) and on the
training speakers' clean EmoDB clips (how well the layout fits what it was trained on), and the wall time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeser import augment, models
from edgeser.distill import DistillConfig, distill, load_windows
from edgeser.label import read_labels
from edgeser.metrics import ccc

VAL_SPEAKERS = ["12", "09"]


def _scores(student: Path, labels: Path, keep: Any = None) -> np.ndarray:
    table = read_labels(labels)
    rows = np.arange(len(table)) if keep is None else np.array([i for i in range(len(table)) if keep(table, i)])
    windows = load_windows(table)[rows]
    return ccc(_predict(student, windows), table.targets[rows])


def _predict(student: Path, windows: np.ndarray) -> np.ndarray:
    """The student's A/D/V for (N, T) windows, in torch (what tools/evaluate_student.py did)."""
    import torch

    model = models.load(student)
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(windows[i:i + 64])).numpy()
                               for i in range(0, len(windows), 64)])


def _clean_training_clip(table: Any, i: int) -> bool:
    """An original EmoDB clip (not an augmented copy or TTS) of a training speaker."""
    return "/emodb/audio/" in str(table.files[i]) and table.speakers[i] not in VAL_SPEAKERS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--labels", type=Path, required=True, help="training labels (edgeser label)")
    p.add_argument("--calibration-labels", type=Path, required=True, help="teacher labels of the calibration set")
    p.add_argument("--out", type=Path, required=True, help="folder for the checkpoints")
    p.add_argument("--layout", action="append", required=True, help="channels:n_fft:hop_length (repeatable)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--windows-per-epoch", type=int, default=1000)
    args = p.parse_args(argv)
    aug = augment.AugmentConfig(noise_prob=0.5, snr_db=(10.0, 30.0), speed_prob=0.0)
    print("| layout | trainable | seconds | best validation A / D / V | calibration A / D / V | training clean V |")
    print("|---|---:|---:|---|---|---:|")
    for layout in args.layout:
        channels, n_fft, hop = (int(v) for v in layout.split(":"))
        cfg = {"channels": channels, "n_fft": n_fft, "hop_length": hop}
        out = args.out / f"c{channels}_n{n_fft}_h{hop}.safetensors"
        t0 = time.monotonic()
        result = distill(args.labels, out, config=DistillConfig(
            student="wav2small", student_config=cfg, epochs=args.epochs, windows_per_epoch=args.windows_per_epoch,
            batch_size=16, lr=3e-3, loss="ccc+mse", val_speakers=VAL_SPEAKERS, augment=aug, seed=0, threads=1))
        seconds = time.monotonic() - t0
        val = " / ".join(f"{v:.3f}" for v in result.best_ccc.values())
        cal = " / ".join(f"{v:.3f}" for v in _scores(out, args.calibration_labels))
        train_v = _scores(out, args.labels, _clean_training_clip)[2]
        trainable = models.count_parameters(models.load(out))[0]
        print(f"| {layout} | {trainable:,} | {seconds:.0f} | {val} | {cal} | {train_v:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
