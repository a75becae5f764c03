"""How far does a teacher agree with itself when its input changes a little?

A student is scored by CCC against the teacher on clean clips, but it is trained on windows that are
shifted, sped up, mixed and noisy, each labelled again by the teacher (``edgeser distill --teacher``). This
tool measures, per dimension, CCC(teacher(perturbed clip), teacher(clean clip)) on the clips of a labels
file: the agreement a student can at best reach with a teacher whose output jumps under changes that do
not change the emotion, and how erratic the targets of the noisy training windows are.

    python research/teacher_stability.py --labels cal.csv --teacher default [--student student.safetensors]

Prints a Markdown table (the mean over ``--repeats`` random draws for the random perturbations). With
``--student``, a second table gives CCC(student(perturbed clip), teacher(perturbed clip)): how well the
student follows the teacher on each kind of perturbed input.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np


def perturbations(rng: np.random.Generator) -> list[tuple[str, Callable[[np.ndarray], np.ndarray], bool]]:
    """(name, clip -> perturbed clip of the same length, random?)."""
    from edgeser import augment

    def shift(ms: int) -> Callable[[np.ndarray], np.ndarray]:
        n = ms * 16
        return lambda c: np.concatenate([c[n:], np.zeros(n, np.float32)])

    def noise(kind: str, snr: float) -> Callable[[np.ndarray], np.ndarray]:
        make = augment.white_noise if kind == "white" else augment.pink_noise
        return lambda c: augment.add_noise(c, make(len(c), rng), snr)

    def speed(factor: float) -> Callable[[np.ndarray], np.ndarray]:
        def f(c: np.ndarray) -> np.ndarray:
            y = augment.speed(c, factor)[: len(c)]
            return np.pad(y, (0, len(c) - len(y)))

        return f

    out: list[tuple[str, Callable[[np.ndarray], np.ndarray], bool]] = [
        ("gain -6 dB", lambda c: augment.gain(c, -6.0), False)
    ]
    out += [(f"shift {ms} ms", shift(ms), False) for ms in (5, 10, 20)]
    out += [
        (f"{kind} noise {snr} dB SNR", noise(kind, snr), True) for snr in (40, 30, 20, 10) for kind in ("white", "pink")
    ]
    out += [(f"speed {f}", speed(f), False) for f in (0.98, 1.02, 0.95, 1.05)]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=Path, required=True, help="labels CSV (its clips are read)")
    ap.add_argument("--teacher", default="default")
    ap.add_argument("--repeats", type=int, default=3, help="draws of each random perturbation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--student", type=Path, help="also score this student against the teacher")
    args = ap.parse_args(argv)

    from edgeser.distill import load_windows
    from edgeser.distill.loop import _predict
    from edgeser.label import read_labels
    from edgeser.metrics import ccc
    from edgeser.teachers import load_teacher

    table = read_labels(args.labels)
    x = load_windows(table)
    teacher = load_teacher(args.teacher)
    clean = teacher(x)
    student = None
    if args.student is not None:
        import torch

        from edgeser import models

        torch.set_num_threads(1)
        student = models.load(args.student)  # _predict (distill's batched evaluation) puts it in eval mode

    print(f"{len(x)} clips of {args.labels}, teacher {teacher.identity}\n")
    rows = [("none", None, ccc(_predict(student, x), clean) if student is not None else None)]
    for name, f, random in perturbations(np.random.default_rng(args.seed)):
        self_agree, followed = [], []
        for _ in range(args.repeats if random else 1):
            batch = np.stack([f(c) for c in x]).astype(np.float32)
            out = teacher(batch)
            self_agree.append(ccc(out, clean))
            if student is not None:
                followed.append(ccc(_predict(student, batch), out))
        rows.append((name, np.mean(self_agree, axis=0), np.mean(followed, axis=0) if followed else None))
    print("CCC(teacher(perturbed), teacher(clean))\n")
    print("| perturbation | arousal | dominance | valence |\n|---|---:|---:|---:|")
    for name, (a, d, v), _ in rows[1:]:
        print(f"| {name} | {a:.3f} | {d:.3f} | {v:.3f} |")
    if student is not None:
        print(f"\nCCC(student(perturbed), teacher(perturbed)), student {args.student}\n")
        print("| perturbation | arousal | dominance | valence |\n|---|---:|---:|---:|")
        for name, _, (a, d, v) in rows:
            print(f"| {name} | {a:.3f} | {d:.3f} | {v:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
