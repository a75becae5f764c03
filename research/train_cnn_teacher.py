"""Train the earlier CNN reference teacher on EmoDB, select it by leave-speakers-out cross-validation.

Superseded: the shipped teacher is built by tools/train_functionals_teacher.py (functionals + logistic
regression). This trainer stays to replay the comparison logged in research/log.md (the
"previous CNN teacher" row of the reference teacher's choices); nothing shipped depends on it.

Targets: each EmoDB category is mapped to the arousal, dominance and valence of its category word in
the NRC VAD Lexicon v1.0 (Mohammad 2018), already on a 0..1 scale (see ``TABLE``).

The model is a small CNN on a 64-band log-mel (computed inside the model from the waveform, so the
ONNX export takes ``waveform`` (N, T) and returns ``adv`` (N, 3)). In the default ``classify`` mode it
predicts the seven categories and outputs the posterior-weighted table entry
``softmax(logits / T) @ TABLE``: valence is then high only when the model is confident of happiness,
not whenever the voice is aroused, and the temperature T (fitted on the out-of-fold predictions of the
cross-validation) keeps unsure predictions near the middle. ``regress`` mode regresses the three values
directly, for comparison.

Cross-validation: 5 folds of 2 speakers (one male, one female). The exported teacher is the model of
the fold that holds out speakers 11 and 14, which are edgeser's built-in calibration set, so the
calibration set is unseen by the teacher too.

Usage (run from the repository root; about 25 min on 2 CPU cores)::

    python research/train_cnn_teacher.py --data ../shared/data/emodb \
        --out scratch/teacher/cnn_teacher.onnx --report scratch/teacher/cv.json
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch  # noqa: TID253  (a training script, not part of the package)
from torch import nn  # noqa: TID253

from edgeser.audio import load
from edgeser.augment import AugmentConfig, Augmenter, spec_mask
from edgeser.defaults import CATEGORY_ADV
from edgeser.metrics import ccc
from edgeser.models.frontend import LogmelFilterBank, Spectrogram, prenorm

CATEGORIES = ("anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness")
TABLE = CATEGORY_ADV
"""NRC VAD Lexicon v1.0 (Mohammad 2018) scores of the category words as (arousal, dominance, valence)."""
MALE = ("03", "10", "11", "12", "15")
FEMALE = ("08", "09", "13", "14", "16")
FOLDS = tuple(zip(MALE, ("08", "09", "14", "13", "16"), strict=True))
"""Held-out speaker pairs; the third pair (11, 14) is edgeser's calibration set."""
EXPORT_FOLD = ("11", "14")
SAMPLING_RATE = 16_000
WINDOW_SAMPLES = 32_000
N_FFT, HOP_LENGTH = 512, 160


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run."""

    mode: str = "classify"
    """``classify`` (7 categories, posterior-weighted table) or ``regress`` (three values, MSE)."""
    epochs: int = 40
    """Passes over the training clips."""
    batch_size: int = 32
    """Clips per step."""
    lr: float = 2e-3
    """Peak AdamW learning rate (one-cycle cosine schedule)."""
    weight_decay: float = 1e-2
    """AdamW weight decay."""
    label_smoothing: float = 0.1
    """Label smoothing of the category targets (classify mode)."""
    dropout: float = 0.3
    """Dropout before each linear layer of the head."""
    width: int = 16
    """Channels of the first conv block (doubled twice, then 1.5x)."""
    mix_prob: float = 0.3
    """Mixup probability (targets mixed alike)."""
    noise_prob: float = 0.6
    """Probability of additive noise (white, pink or babble at 5-30 dB SNR) on a training clip."""
    adv_weight: float = 0.0
    """Weight of an extra MSE between the posterior-weighted A/D/V and the target's A/D/V (classify mode)."""
    n_mels: int = 64
    """Mel bands of the log-mel input."""
    std_pool: bool = False
    """Also pool the standard deviation over time (mean, max and std)."""
    pool: str = "flatten"
    """``flatten``: keep the frequency axis (pitch and formant positions) and pool over time only;
    ``freq-mean``: average over frequency first (shift-invariant, loses spectral position)."""
    seed: int = 0
    """Seed of weights, order and augmentation."""


class Block(nn.Module):
    """Conv 3x3 -> BatchNorm -> ReLU, then an optional 2x2 max-pool."""

    def __init__(self, c_in: int, c_out: int, pool: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(c_out)
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.norm(self.conv(x))))


class ReferenceTeacher(nn.Module):
    """Waveform (B, T) at 16 kHz -> (B, 3) arousal, dominance, valence, through a log-mel CNN."""

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        self.mode = cfg.mode
        self.spectrogram = Spectrogram(N_FFT, HOP_LENGTH)
        self.logmel = LogmelFilterBank(sampling_rate=SAMPLING_RATE, n_fft=N_FFT, n_mels=cfg.n_mels)
        self.input_norm = nn.BatchNorm2d(1)
        w = cfg.width
        self.blocks = nn.Sequential(
            Block(1, w, True), Block(w, 2 * w, True), Block(2 * w, 4 * w, True), Block(4 * w, 6 * w, False)
        )
        outputs = len(CATEGORIES) if cfg.mode == "classify" else 3
        self.pool = cfg.pool
        stats = 3 if cfg.std_pool else 2  # mean, max (and std) of the 6w channels over time
        features = stats * 6 * w * (cfg.n_mels // 8 if cfg.pool == "flatten" else 1)
        self.std_pool = cfg.std_pool
        self.head = nn.Sequential(
            nn.Dropout(cfg.dropout),
            nn.Linear(features, 64),
            nn.ReLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(64, outputs),
        )
        self.register_buffer("table", torch.tensor([TABLE[c] for c in CATEGORIES], dtype=torch.float32))
        self.register_buffer("temperature", torch.tensor(1.0))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Waveform (B, T) -> normalised log-mel (B, 1, frames, bands)."""
        return self.input_norm(self.logmel(self.spectrogram(prenorm(x))))

    def scores(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, 1, frames, bands) -> category logits (B, 7) or raw regression outputs (B, 3)."""
        h = self.blocks(mel)  # (B, C, frames', bands')
        if self.pool == "flatten":
            h = h.permute(0, 1, 3, 2).flatten(1, 2)  # (B, C * bands', frames')
        else:
            h = h.mean(dim=3)  # (B, C, frames'): average over frequency
        pooled = [h.mean(dim=2), h.amax(dim=2)]  # mean and max over time: (B, C') each
        if self.std_pool:
            pooled.append(torch.sqrt(h.var(dim=2, unbiased=False) + 1e-5))  # variability (e.g. pitch range)
        h = torch.cat(pooled, dim=1)
        return self.head(h)

    def to_adv(self, scores: torch.Tensor) -> torch.Tensor:
        if self.mode == "classify":
            return torch.softmax(scores / self.temperature, dim=1) @ self.table  # (B, 3)
        return torch.sigmoid(scores)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_adv(self.scores(self.features(x)))


def read_emodb(folder: Path) -> tuple[np.ndarray, list[str], list[str]]:
    """All clips as (N, 32000) float32, with their speakers and categories."""
    with (folder / "labels.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    x = np.stack([_fit(load(folder / r["file"])) for r in rows])
    return x, [r["speaker"] for r in rows], [r["emotion"] for r in rows]


def _fit(x: np.ndarray) -> np.ndarray:
    out = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
    out[: min(len(x), WINDOW_SAMPLES)] = x[:WINDOW_SAMPLES]
    return out


def _loss(model: ReferenceTeacher, scores: torch.Tensor, target: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    if cfg.mode == "classify":  # target: (B, 7) soft category distribution
        smooth = target * (1 - cfg.label_smoothing) + cfg.label_smoothing / target.shape[1]
        loss = -(smooth * torch.log_softmax(scores, dim=1)).sum(dim=1).mean()
        if cfg.adv_weight > 0:  # cost-sensitive: confusing far-apart categories (anger, happiness) costs more
            loss = loss + cfg.adv_weight * torch.mean((model.to_adv(scores) - target @ model.table) ** 2)
        return loss
    return torch.mean((torch.sigmoid(scores) - target) ** 2)  # target: (B, 3) table values


def train(x: np.ndarray, cats: list[str], cfg: TrainConfig, *, log: str = "") -> ReferenceTeacher:
    """Train one model on clips ``x`` with categories ``cats``."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = ReferenceTeacher(cfg)
    onehot = np.eye(len(CATEGORIES), dtype=np.float32)[[CATEGORIES.index(c) for c in cats]]
    targets = onehot if cfg.mode == "classify" else onehot @ np.array([TABLE[c] for c in CATEGORIES], np.float32)
    aug = Augmenter(AugmentConfig(mix_prob=cfg.mix_prob, noise_prob=cfg.noise_prob), seed=cfg.seed)
    steps = cfg.epochs * int(np.ceil(len(x) / cfg.batch_size))
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.15)
    t0 = time.time()
    for epoch in range(cfg.epochs):
        model.train()
        order, total = rng.permutation(len(x)), 0.0
        for start in range(0, len(x), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            xb, yb = aug.batch([x[i] for i in idx], targets[idx], WINDOW_SAMPLES)
            mel = spec_mask(model.features(torch.from_numpy(xb)), rng)
            loss = _loss(model, model.scores(mel), torch.from_numpy(yb), cfg)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if (epoch + 1) % 10 == 0 or epoch == 0:
            print(
                f"{log} epoch {epoch + 1}/{cfg.epochs} loss {total / len(x):.4f} ({time.time() - t0:.0f} s)",
                flush=True,
            )
    return model.eval()


@torch.no_grad()
def predict_scores(model: ReferenceTeacher, x: np.ndarray, batch: int = 64) -> np.ndarray:
    """Category logits (or raw regression outputs) for clips ``x``."""
    out = [model.scores(model.features(torch.from_numpy(x[i : i + batch]))).numpy() for i in range(0, len(x), batch)]
    return np.concatenate(out)


def to_adv(model: ReferenceTeacher, scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    model.temperature.fill_(temperature)
    with torch.no_grad():
        return model.to_adv(torch.from_numpy(scores)).numpy()


def fit_temperature(scores: np.ndarray, cats: list[str]) -> float:
    """The softmax temperature that fits the category targets best (the shipped teacher's trainer's rule)."""
    from common import tool

    return tool("train_functionals_teacher").fit_temperature(scores, cats)


def run_folds(
    x: np.ndarray, spk: list[str], cats: list[str], cfg: TrainConfig, folds: tuple[tuple[str, str], ...]
) -> tuple[np.ndarray, np.ndarray, dict[str, torch.Tensor] | None]:
    """Train one model per held-out pair; returns out-of-fold scores, which rows were held out, and the
    state of the export fold's model (None when that fold was not run)."""
    spk_a = np.array(spk)
    oof = np.zeros((len(x), len(CATEGORIES) if cfg.mode == "classify" else 3), np.float32)
    state = None
    for fold in folds:
        test = np.isin(spk_a, fold)
        model = train(x[~test], [c for c, t in zip(cats, test, strict=True) if not t], cfg, log=f"fold {fold}")
        oof[test] = predict_scores(model, x[test])
        state = model.state_dict() if fold == EXPORT_FOLD else state
    return oof, np.isin(spk_a, [s for f in folds for s in f]), state


def score(
    oof: np.ndarray,
    seen: np.ndarray,
    spk: list[str],
    cats: list[str],
    cfg: TrainConfig,
    folds: tuple[tuple[str, str], ...],
    model: ReferenceTeacher,
) -> dict[str, object]:
    """CCC per dimension against the category targets, pooled and per fold, at T = 1 and calibrated;
    sets the model's temperature to the one fitted on the out-of-fold logits."""
    spk_a, truth = np.array(spk), np.array([TABLE[c] for c in cats], np.float32)
    seen_cats = [c for c, s in zip(cats, seen, strict=True) if s]
    temperature = fit_temperature(oof[seen], seen_cats) if cfg.mode == "classify" else 1.0
    report: dict[str, object] = {
        "config": asdict(cfg),
        "folds": ["+".join(f) for f in folds],
        "temperature": temperature,
    }
    for name, t in (("t1", 1.0), ("calibrated", temperature)):
        adv = to_adv(model, oof, t)
        per_fold = np.array([ccc(adv[np.isin(spk_a, f)], truth[np.isin(spk_a, f)]) for f in folds])
        report[name] = {
            "pooled_ccc": ccc(adv[seen], truth[seen]).round(4).tolist(),
            "fold_mean_ccc": per_fold.mean(0).round(4).tolist(),
            "per_fold_ccc": {"+".join(f): per_fold[i].round(4).tolist() for i, f in enumerate(folds)},
        }
    if cfg.mode == "classify":
        pred, y = oof[seen].argmax(1), np.array([CATEGORIES.index(c) for c in seen_cats])
        recalls = [float(np.mean(pred[y == k] == k)) for k in range(len(CATEGORIES)) if (y == k).any()]
        report["unweighted_accuracy"] = round(float(np.mean(recalls)), 4)
        report["recall"] = dict(zip(CATEGORIES, [round(r, 4) for r in recalls], strict=True))
    model.temperature.fill_(temperature)
    return report


def save_part(
    folder: Path, oof: np.ndarray, seen: np.ndarray, state: dict[str, torch.Tensor] | None, cfg: TrainConfig
) -> None:
    """Keep one process's share of the folds, to merge with :func:`load_parts`."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "oof.npz", oof=oof, seen=seen)
    (folder / "config.json").write_text(json.dumps(asdict(cfg)), encoding="utf-8")
    if state is not None:
        torch.save(state, folder / "export_model.pt")


def load_parts(folders: list[Path]) -> tuple[np.ndarray, np.ndarray, dict[str, torch.Tensor] | None, TrainConfig]:
    """Merge the folds that several processes ran (same configuration, disjoint folds)."""
    oof, seen, state, cfg = None, None, None, None
    for folder in folders:
        part = np.load(folder / "oof.npz")
        part_cfg = TrainConfig(**json.loads((folder / "config.json").read_text(encoding="utf-8")))
        if cfg is not None and part_cfg != cfg:
            raise SystemExit(f"{folder}: trained with another configuration")
        cfg = part_cfg
        oof = part["oof"] if oof is None else np.where(part["seen"][:, None], part["oof"], oof)
        seen = part["seen"] if seen is None else seen | part["seen"]
        if (folder / "export_model.pt").is_file():
            state = torch.load(folder / "export_model.pt", weights_only=True)
    assert oof is not None and seen is not None and cfg is not None
    return oof, seen, state, cfg


def export(model: nn.Module, out: Path, report: dict[str, object], *, name: str = "edgeser reference teacher") -> None:
    """Export a teacher to ONNX with its cross-validation report, as the shipped teacher's trainer does."""
    from common import tool

    tool("train_functionals_teacher").export(model, out, report, name=name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="EmoDB folder with labels.csv and audio/")
    p.add_argument("--out", type=Path, help="ONNX file for the export-fold model (skip export if omitted)")
    p.add_argument("--report", type=Path, help="JSON file for the cross-validation scores")
    p.add_argument("--mode", choices=("classify", "regress"), default="classify")
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--width", type=int, default=TrainConfig.width)
    p.add_argument("--mix-prob", type=float, default=TrainConfig.mix_prob)
    p.add_argument("--pool", choices=("flatten", "freq-mean"), default=TrainConfig.pool)
    p.add_argument("--adv-weight", type=float, default=TrainConfig.adv_weight)
    p.add_argument("--noise-prob", type=float, default=TrainConfig.noise_prob)
    p.add_argument("--n-mels", type=int, default=TrainConfig.n_mels)
    p.add_argument("--label-smoothing", type=float, default=TrainConfig.label_smoothing)
    p.add_argument("--dropout", type=float, default=TrainConfig.dropout)
    p.add_argument("--std-pool", action="store_true")
    p.add_argument("--folds", nargs="*", help="only these folds, e.g. 11+14 (quick experiments; no export)")
    p.add_argument("--part-out", type=Path, help="save this process's folds here (to --merge later)")
    p.add_argument("--merge", type=Path, nargs="*", help="merge --part-out folders instead of training")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(
        mode=args.mode,
        epochs=args.epochs,
        width=args.width,
        mix_prob=args.mix_prob,
        pool=args.pool,
        adv_weight=args.adv_weight,
        noise_prob=args.noise_prob,
        n_mels=args.n_mels,
        std_pool=args.std_pool,
        label_smoothing=args.label_smoothing,
        dropout=args.dropout,
        seed=args.seed,
    )
    x, spk, cats = read_emodb(args.data)
    if args.merge:
        oof, seen, state, cfg = load_parts(args.merge)
        folds = tuple(f for f in FOLDS if np.isin(np.array(spk), f).any() and seen[np.isin(np.array(spk), f)].all())
    else:
        folds = tuple(f for f in FOLDS if not args.folds or "+".join(f) in args.folds)
        oof, seen, state = run_folds(x, spk, cats, cfg, folds)
        if args.part_out:
            save_part(args.part_out, oof, seen, state, cfg)
    model = ReferenceTeacher(cfg)
    if state is not None:
        model.load_state_dict(state)
    report = score(oof, seen, spk, cats, cfg, folds, model.eval())
    report["parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(json.dumps(report, indent=1))
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=1), encoding="utf-8")
    if args.out and folds == FOLDS and state is not None:
        export(model, args.out, report)
        print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
