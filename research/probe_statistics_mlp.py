"""Probe: which per-utterance statistics carry the teacher's A/D/V, measured with a small MLP.

For each set of statistics below, a 64-unit MLP (ReLU, sigmoid outputs, MSE, Adam, 300 epochs) is fitted
to the teacher's labels of the training speakers' windows and scored with CCC(MLP, teacher) on the
validation speakers' windows and on a second labels file (the calibration speakers); the table gives the
mean over seeds. No student is trained: it says what a head could reach if its input were those
statistics, which is how the default student's ``shape_stats`` was found
(research/default-student-runs.md, "What the statistics are worth").

- ``teacher: all``, ``teacher: MFCC only``, ``teacher: no MFCC``, ``teacher: no pitch``: the embedded
  teacher's own 118 functionals (tools/train_functionals_teacher.py), or a group of them;
- ``log-mel: all frames``: mean and standard deviation over all frames of each band of a Wav2Small's
  log-mel (the default's 512-point STFT, 26 bands) and of its 2-frame delta;
- ``log-mel: speech frames``: the same over frames whose loudest band is within 35 dB of the clip's
  loudest (zero padding and pauses left out);
- ``shape: speech frames``: the same of each frame's log-mel less its mean over bands (the spectral
  shape, as MFCCs without c0), over frames whose total power is within 35 dB of the loudest: the
  statistics of :func:`edgeser.models.wav2small.shape_stats`, with a hard mask.

    python research/probe_statistics_mlp.py --labels labels_huge.csv --eval-labels cal_labels.csv --seeds 0 1 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SPEECH_DB = 35.0
PITCH = list(range(103, 114))  # F0 functionals and voicing clarity (train_functionals_teacher.Functionals order)
RATE = list(range(114, 118))  # voiced fraction, onsets, loudness peaks, active fraction
MFCC = list(range(0, 38)) + list(range(50, 88))  # MFCC 1-19 and their deltas: means and deviations


def _moments(x: np.ndarray, w: np.ndarray) -> list[np.ndarray]:
    """x (B, F, M), w (B, F) 0/1 -> weighted mean and standard deviation over frames, each (B, M)."""
    w = w[:, :, None]
    n = np.maximum(w.sum(1), 1.0)
    mean = (w * x).sum(1) / n
    return [mean, np.sqrt((w * (x - mean[:, None]) ** 2).sum(1) / n)]


def logmel_sets(windows: np.ndarray) -> dict[str, np.ndarray]:
    """The three log-mel statistics sets of (N, T) windows."""
    import torch

    from edgeser import models
    from edgeser.models.frontend import prenorm

    model = models.create_model("wav2small", n_fft=512, hop_length=256).eval()
    parts: dict[str, list[np.ndarray]] = {"log-mel: all frames": [], "log-mel: speech frames": [],
                                          "shape: speech frames": []}
    for i in range(0, len(windows), 128):
        x = torch.from_numpy(windows[i : i + 128])
        with torch.no_grad():
            spectrum = model.vgg7.spectrogram_extractor(prenorm(x))  # the STFT once: features() would redo it
            power = spectrum.transpose(1, 2).numpy()  # (B, frames, bins)
            mel = model.vgg7.logmel_extractor(spectrum)[:, 0].numpy()  # (B, frames, 26) in dB
        ones = np.ones(mel.shape[:2])
        peak = mel.max(2)
        speech = (peak > peak.max(1, keepdims=True) - SPEECH_DB).astype(np.float64)
        energy = 10.0 * np.log10(power.sum(2) + 1e-10)[:, : mel.shape[1]]
        loud = (energy > energy.max(1, keepdims=True) - SPEECH_DB).astype(np.float64)
        shape = mel - mel.mean(2, keepdims=True)
        for name, x_, w in (("log-mel: all frames", mel, ones), ("log-mel: speech frames", mel, speech),
                            ("shape: speech frames", shape, loud)):
            d = x_[:, 2:] - x_[:, :-2]
            parts[name].append(np.concatenate(_moments(x_, w) + _moments(d, w[:, 2:] * w[:, :-2]), 1))
    return {k: np.concatenate(v) for k, v in parts.items()}


def teacher_sets(windows: np.ndarray) -> dict[str, np.ndarray]:
    from common import tool

    f = tool("train_functionals_teacher").extract(windows)
    everything = list(range(f.shape[1]))
    return {"teacher: all": f, "teacher: MFCC only": f[:, MFCC],
            "teacher: no MFCC": f[:, [i for i in everything if i not in MFCC]],
            "teacher: no pitch": f[:, [i for i in everything if i not in PITCH + RATE]]}


def fit(x: np.ndarray, y: np.ndarray, tests: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """Fit the MLP on (x, y); its outputs on each of ``tests``."""
    import torch

    torch.manual_seed(seed)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = lambda a: torch.from_numpy(np.clip((a - mu) / sd, -6, 6).astype(np.float32))  # noqa: E731
    xt, yt = z(x), torch.from_numpy(y.astype(np.float32))
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 64), torch.nn.ReLU(), torch.nn.Linear(64, 3),
                              torch.nn.Sigmoid())
    opt = torch.optim.Adam(net.parameters(), 3e-3, weight_decay=1e-4)
    for _ in range(300):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 512):
            b = perm[i : i + 512]
            opt.zero_grad()
            ((net(xt[b]) - yt[b]) ** 2).mean().backward()
            opt.step()
    with torch.no_grad():
        return [net(z(t)).numpy() for t in tests]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=Path, required=True, help="teacher labels of training and validation windows")
    ap.add_argument("--eval-labels", type=Path, required=True, help="teacher labels of other held-out speakers")
    ap.add_argument("--val-speakers", nargs="+", default=["09", "12"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch

    from edgeser.distill import load_windows
    from edgeser.label import read_labels
    from edgeser.metrics import ccc

    torch.set_num_threads(args.threads)
    table, other = read_labels(args.labels), read_labels(args.eval_labels)
    val = np.isin(np.array(table.speakers), args.val_speakers)
    windows, other_windows = load_windows(table), load_windows(other)
    sets = {**teacher_sets(windows), **logmel_sets(windows)}
    other_sets = {**teacher_sets(other_windows), **logmel_sets(other_windows)}
    print(f"{(~val).sum()} training, {val.sum()} validation ({' '.join(args.val_speakers)}) and "
          f"{len(other)} evaluation windows; CCC(MLP, teacher), mean over seeds {args.seeds}\n")
    print("| statistics | width | validation A / D / V | evaluation A / D / V |")
    print("|---|---:|---|---|")
    for name, x in sets.items():
        scores = []
        for seed in args.seeds:
            p_val, p_other = fit(x[~val], table.targets[~val], [x[val], other_sets[name]], seed)
            scores.append((ccc(p_val, table.targets[val]), ccc(p_other, other.targets)))
        v, e = (np.mean([s[i] for s in scores], 0) for i in (0, 1))
        print(f"| {name} | {x.shape[1]} | {' / '.join(f'{c:.3f}' for c in v)} | {' / '.join(f'{c:.3f}' for c in e)} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
