"""Train edgeser's reference teacher as prosodic and spectral functionals with a linear classifier.

The model computes, inside the exported graph, eGeMAPS-style low-level descriptors per 10 ms frame
(MFCC 1-19 and their deltas, frame energy, spectral slope, alpha ratio, Hammarberg index, spectral
flux and centroid, F0 and voicing from the autocorrelation of an 8 kHz power spectrum), takes
functionals of them over the active frames (mean, standard deviation, percentiles, rates), and feeds
the standardised result to a multinomial logistic regression over the seven EmoDB categories. The
output is the posterior-weighted category entry of the A/D/V table (NRC VAD Lexicon v1.0,
``TABLE`` below), with a temperature fitted on out-of-fold predictions.

Why: a linear model on utterance functionals is the classic speaker-independent EmoDB baseline
(eGeMAPS + SVM); it separates anger from happiness and sadness from neutral better than the small
CNN did at the same data size, and cross-validation runs in seconds, so features and regularisation
can be selected by leave-speakers-out cross-validation rather than guessed.

Usage (from the repository root)::

    python tools/train_functionals_teacher.py --data ../shared/data/emodb \
        --out edgeser/assets/reference_teacher.onnx --report cv.json
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch  # noqa: TID253  (a training script, not part of the package)
from torch import nn  # noqa: TID253

from edgeser.audio import load
from edgeser.augment import AugmentConfig, Augmenter
from edgeser.defaults import CATEGORY_ADV
from edgeser.metrics import ccc
from edgeser.models.frontend import Spectrogram, prenorm
from edgeser.runtime.frontend import hann, mel_filterbank

CATEGORIES = ("anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness")
TABLE = CATEGORY_ADV
"""NRC VAD Lexicon v1.0 (Mohammad 2018) scores of the category words as (arousal, dominance, valence)."""
MALE = ("03", "10", "11", "12", "15")
FEMALE = ("08", "09", "13", "14", "16")
FOLDS = tuple(zip(MALE, ("08", "09", "14", "13", "16"), strict=True))
"""Held-out speaker pairs (one male, one female); the third pair (11, 14) is edgeser's calibration set."""
EXPORT_FOLD = ("11", "14")
"""The fold whose model is exported: it never saw the built-in calibration set."""
SAMPLING_RATE = 16_000
WINDOW_SAMPLES = 32_000
"""EmoDB clips are cut or zero-padded to 2 s."""
N_FFT, HOP = 512, 160
"""Spectral analysis at 16 kHz: 32 ms Hann frames every 10 ms."""
PITCH_WIN, PITCH_DFT, PITCH_HOP = 320, 640, 80
"""Pitch analysis at 8 kHz: 40 ms Hann frames zero-padded to 80 ms (no circular wrap), every 10 ms."""
F0_MIN, F0_MAX = 70.0, 450.0
BIG = 1.0e4


@dataclass
class FitConfig:
    """Regularisation and augmentation of one fit."""

    l2: float = 1e-2
    """L2 penalty on the logistic regression weights (per sample)."""
    copies: int = 4
    """Augmented copies of every training clip added to the clean ones."""
    hidden: int = 0
    """Width of a hidden layer (0: plain logistic regression)."""
    label_smoothing: float = 0.0
    seed: int = 0


def _masked_mean(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Mean over frames of x (B, F, D) where m (B, F, 1) is 1."""
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def _masked_std(x: torch.Tensor, m: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    var = (((x - mean[:, None, :]) ** 2) * m).sum(1) / m.sum(1).clamp_min(1.0)
    return torch.sqrt(var + 1e-6)


def _masked_percentiles(x: torch.Tensor, m: torch.Tensor, qs: tuple[float, ...]) -> torch.Tensor:
    """Percentiles over frames of x (B, F) where m (B, F) is 1 (nearest rank): (B, len(qs))."""
    filled = torch.where(m > 0, x, torch.full_like(x, BIG))
    ordered, _ = torch.sort(filled, dim=1)
    n = m.sum(1, keepdim=True).clamp_min(1.0)
    out = []
    for q in qs:
        idx = torch.floor(q * (n - 1.0)).to(torch.int64)
        out.append(torch.gather(ordered, 1, idx))
    return torch.cat(out, dim=1)


class Functionals(nn.Module):
    """Waveform (B, T) at 16 kHz -> utterance-level functionals (B, D)."""

    def __init__(self, n_mels: int = 40, n_mfcc: int = 20) -> None:
        super().__init__()
        self.spec = Spectrogram(N_FFT, HOP)
        self.register_buffer("melW", torch.from_numpy(mel_filterbank(SAMPLING_RATE, N_FFT, n_mels)))
        k = np.arange(n_mels)[:, None]
        j = np.arange(n_mfcc)[None, :]
        dct = np.cos(np.pi * j * (2 * k + 1) / (2 * n_mels)) * math.sqrt(2.0 / n_mels)
        self.register_buffer("dct", torch.from_numpy(dct[:, 1:].astype(np.float32)))  # drop c0 (loudness)
        freqs = np.arange(N_FFT // 2 + 1) * SAMPLING_RATE / N_FFT
        self.register_buffer("freqs", torch.from_numpy((freqs / 1000.0).astype(np.float32)))
        band = lambda lo, hi: torch.from_numpy(((freqs >= lo) & (freqs < hi)).astype(np.float32))  # noqa: E731
        self.register_buffer("low", band(50, 1000))
        self.register_buffer("high", band(1000, 5000))
        self.register_buffer("b02", band(0, 2000))
        self.register_buffer("b25", band(2000, 5000))
        # Spectral slope 0-5 kHz: least-squares slope of dB over kHz, as a fixed weight vector.
        sel = (freqs < 5000).astype(np.float64)
        fc = (freqs / 1000.0 - (freqs / 1000.0 * sel).sum() / sel.sum()) * sel
        self.register_buffer("slope_w", torch.from_numpy((fc / (fc**2).sum()).astype(np.float32)))
        # Pitch: windowed DFT of 40 ms at 8 kHz, zero-padded to 80 ms, and the cosine sums that turn its
        # power spectrum into the autocorrelation at the candidate lags.
        kk = np.arange(PITCH_DFT // 2 + 1)[:, None]
        nn_ = np.arange(PITCH_WIN)[None, :]
        w = hann(PITCH_WIN)[None, :]
        phase = -2.0 * np.pi * kk * nn_ / PITCH_DFT
        self.pitch_real = nn.Conv1d(1, kk.shape[0], PITCH_WIN, stride=PITCH_HOP, bias=False)
        self.pitch_imag = nn.Conv1d(1, kk.shape[0], PITCH_WIN, stride=PITCH_HOP, bias=False)
        with torch.no_grad():
            self.pitch_real.weight.copy_(torch.from_numpy((np.cos(phase) * w).astype(np.float32))[:, None, :])
            self.pitch_imag.weight.copy_(torch.from_numpy((np.sin(phase) * w).astype(np.float32))[:, None, :])
        for p in self.parameters():
            p.requires_grad = False
        sr = SAMPLING_RATE // 2
        self.lag_min, lag_max = int(sr / F0_MAX), int(math.ceil(sr / F0_MIN))
        lags = np.arange(self.lag_min - 1, lag_max + 2)  # one extra each side for interpolation
        weights = np.full(kk.shape[0], 2.0)
        weights[0] = weights[-1] = 1.0
        cos = weights[:, None] * np.cos(2.0 * np.pi * kk * lags[None, :] / PITCH_DFT) / PITCH_DFT
        self.register_buffer("acf_cos", torch.from_numpy(cos.astype(np.float32)))  # (bins, lags)
        self.register_buffer("acf0", torch.from_numpy((weights / PITCH_DFT).astype(np.float32)))
        win = hann(PITCH_WIN)
        rw = np.array([np.sum(win[: PITCH_WIN - t] * win[t:]) for t in lags]) / np.sum(win * win)
        self.register_buffer("win_acf", torch.from_numpy(rw.astype(np.float32)))
        self.register_buffer("lags", torch.from_numpy(lags.astype(np.float32)))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = prenorm(wav)
        power = self.spec(x).transpose(1, 2)  # (B, F, bins)
        mel_db = 10.0 * torch.log10(torch.clamp(power @ self.melW, min=1e-10))  # (B, F, n_mels)
        mfcc = mel_db @ self.dct  # (B, F, 19)
        energy = 10.0 * torch.log10(power.sum(2) + 1e-10)  # (B, F)
        active = (energy > energy.amax(1, keepdim=True) - 35.0).to(x.dtype)  # (B, F)
        db = 10.0 * torch.log10(power + 1e-10)
        total = power.sum(2) + 1e-10
        alpha = 10.0 * torch.log10(((power * self.low).sum(2) + 1e-10) / ((power * self.high).sum(2) + 1e-10))
        hamm = (db * self.b02 - BIG * (1 - self.b02)).amax(2) - (db * self.b25 - BIG * (1 - self.b25)).amax(2)
        slope = (db * self.slope_w).sum(2)
        centroid = (power * self.freqs).sum(2) / total
        norm_spec = power / total[:, :, None]
        flux = torch.cat(
            [torch.zeros_like(energy[:, :1]), ((norm_spec[:, 1:] - norm_spec[:, :-1]) ** 2).sum(2).sqrt()], dim=1
        )

        # Pitch at 8 kHz (pairwise average is a crude but adequate anti-alias filter below 4 kHz).
        half = nn.functional.avg_pool1d(x[:, None, :], 2, 2)
        real, imag = self.pitch_real(half), self.pitch_imag(half)
        pp = (real**2 + imag**2).transpose(1, 2)  # (B, F2, bins)
        r0 = (pp * self.acf0).sum(2) + 1e-10  # (B, F2)
        acf = (pp @ self.acf_cos) / r0[:, :, None] / self.win_acf  # normalised, window-corrected
        inner = acf[:, :, 1:-1]
        best = inner.argmax(2, keepdim=True)  # (B, F2, 1)
        peak = torch.gather(inner, 2, best)
        left = torch.gather(acf, 2, best)
        right = torch.gather(acf, 2, best + 2)
        den = left - 2 * peak + right
        delta = torch.where(den.abs() > 1e-6, 0.5 * (left - right) / (den - 1e-12 * (den == 0)), torch.zeros_like(den))
        delta = delta.clamp(-0.5, 0.5)
        lag = self.lags[1:-1][best.squeeze(2)] + delta.squeeze(2)
        f0_st = 12.0 * torch.log2((SAMPLING_RATE / 2) / lag / 27.5)  # semitones above 27.5 Hz
        clarity = peak.squeeze(2)
        # 40 ms pitch frames at 8 kHz are one 10 ms hop fewer than 32 ms frames at 16 kHz (or as many):
        # align on the pitch frames.
        n = f0_st.shape[1]
        act = active[:, :n]
        voiced = ((clarity > 0.5) & (act > 0)).to(x.dtype)

        lld = torch.stack([energy, alpha, hamm, slope, centroid, flux], dim=2)  # (B, F, 6)
        d_mfcc = mfcc[:, 2:] - mfcc[:, :-2]
        d_lld = lld[:, 2:] - lld[:, :-2]
        m = active[:, :, None]
        m_d = (active[:, 2:] * active[:, :-2])[:, :, None]
        feats = []
        for value, mask in ((mfcc, m), (lld, m), (d_mfcc, m_d), (d_lld, m_d)):
            mean = _masked_mean(value, mask)
            feats += [mean, _masked_std(value, mask, mean)]
        feats.append(_masked_percentiles(energy, active, (0.2, 0.5, 0.8)))
        # Pitch functionals over voiced frames.
        vm = voiced[:, :, None]
        f0_mean = _masked_mean(f0_st[:, :, None], vm)
        f0_std = _masked_std(f0_st[:, :, None], vm, f0_mean)
        f0_pct = _masked_percentiles(f0_st, voiced, (0.1, 0.2, 0.5, 0.8, 0.9))
        both = voiced[:, 1:] * voiced[:, :-1]
        d_f0 = (f0_st[:, 1:] - f0_st[:, :-1]).clamp(-3.0, 3.0)
        d_f0_abs = _masked_mean(d_f0.abs()[:, :, None], both[:, :, None])
        d_f0_mean = _masked_mean(d_f0[:, :, None], both[:, :, None])
        cl = _masked_mean(clarity[:, :, None], vm)
        n_act = act.sum(1, keepdim=True).clamp_min(1.0)
        voiced_frac = voiced.sum(1, keepdim=True) / n_act
        onsets = (voiced[:, 1:] * (1 - voiced[:, :-1])).sum(1, keepdim=True) / n_act * 100.0  # per second
        # Loudness peaks (syllable-like) per active second on a 3-frame smoothed contour.
        e = energy[:, :n]
        sm = (e[:, :-2] + e[:, 1:-1] + e[:, 2:]) / 3.0
        peaks = ((sm[:, 1:-1] > sm[:, :-2]) & (sm[:, 1:-1] >= sm[:, 2:]) & (act[:, 2:-2] > 0)).to(x.dtype)
        peak_rate = peaks.sum(1, keepdim=True) / n_act * 100.0
        feats += [
            f0_mean,
            f0_std,
            f0_pct,
            f0_pct[:, 4:5] - f0_pct[:, 0:1],
            d_f0_abs,
            d_f0_mean,
            cl,
            voiced_frac,
            onsets,
            peak_rate,
            active.mean(1, keepdim=True),
        ]
        return torch.cat(feats, dim=1)


class FunctionalsTeacher(nn.Module):
    """Waveform (B, T) -> (B, 3) arousal, dominance, valence: functionals, standardisation, linear classifier."""

    def __init__(self, dim: int, hidden: int = 0) -> None:
        super().__init__()
        self.features = Functionals()
        self.register_buffer("mu", torch.zeros(dim))
        self.register_buffer("sigma", torch.ones(dim))
        self.head = (
            nn.Linear(dim, len(CATEGORIES))
            if hidden == 0
            else nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, len(CATEGORIES)))
        )
        self.register_buffer("table", torch.tensor([TABLE[c] for c in CATEGORIES], dtype=torch.float32))
        self.register_buffer("temperature", torch.tensor(1.0))

    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        z = ((feats - self.mu) / self.sigma).clamp(-6.0, 6.0)
        return self.head(z)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(self.features(wav)) / self.temperature, dim=1) @ self.table


@torch.no_grad()
def extract(x: np.ndarray, batch: int = 64) -> np.ndarray:
    """Functionals of clips ``x`` (N, T)."""
    f = Functionals().eval()
    return np.concatenate([f(torch.from_numpy(x[i : i + batch])).numpy() for i in range(0, len(x), batch)])


def augmented_copies(x: np.ndarray, copies: int, seed: int) -> np.ndarray:
    """``copies`` augmented versions of each clip (noise 5-30 dB SNR, speed 0.9-1.1, gain, crops): (copies, N, T)."""
    aug = Augmenter(AugmentConfig(noise_prob=0.7, speed_prob=0.5, crop_prob=0.3, mix_prob=0.0), seed=seed)
    out = np.empty((copies, *x.shape), np.float32)
    dummy = np.zeros((len(x), 1), np.float32)
    for c in range(copies):
        for start in range(0, len(x), 64):
            out[c, start : start + 64], _ = aug.batch(
                list(x[start : start + 64]), dummy[start : start + 64], x.shape[1]
            )
    return out


def fit_head(feats: np.ndarray, y: np.ndarray, cfg: FitConfig, dim: int) -> FunctionalsTeacher:
    """Standardise on ``feats`` and fit the classifier (full-batch L-BFGS, L2-penalised cross-entropy)."""
    torch.manual_seed(cfg.seed)
    model = FunctionalsTeacher(dim, cfg.hidden)
    f = torch.from_numpy(feats)
    model.mu.copy_(f.mean(0))
    model.sigma.copy_(f.std(0).clamp_min(1e-4))
    target = torch.from_numpy(y)
    params = list(model.head.parameters())
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=500, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model.logits(f), target, label_smoothing=cfg.label_smoothing)
        loss = loss + cfg.l2 * sum((p**2).sum() for n, p in model.head.named_parameters() if "weight" in n)
        loss.backward()
        return loss

    opt.step(closure)
    return model.eval()


def cross_validate(
    clean: np.ndarray, aug: np.ndarray, spk: list[str], cats: list[str], cfg: FitConfig
) -> tuple[np.ndarray, dict[str, FunctionalsTeacher]]:
    """Out-of-fold logits (N, 7) over the five speaker-pair folds, and each fold's model."""
    spk_a, y = np.array(spk), np.array([CATEGORIES.index(c) for c in cats])
    oof = np.zeros((len(clean), len(CATEGORIES)), np.float32)
    models = {}
    for fold in FOLDS:
        test = np.isin(spk_a, fold)
        train_f = np.concatenate([clean[~test], *[a[~test] for a in aug[: cfg.copies]]])
        train_y = np.concatenate([y[~test]] * (1 + min(cfg.copies, len(aug))))
        model = fit_head(train_f, train_y, cfg, clean.shape[1])
        with torch.no_grad():
            oof[test] = model.logits(torch.from_numpy(clean[test])).numpy()
        models["+".join(fold)] = model
    return oof, models


def report(oof: np.ndarray, spk: list[str], cats: list[str], cfg: FitConfig) -> dict[str, object]:
    """CCC against the category targets, pooled and per fold, with the fitted temperature; UA and recalls."""
    spk_a, y = np.array(spk), np.array([CATEGORIES.index(c) for c in cats])
    table = np.array([TABLE[c] for c in CATEGORIES], np.float32)
    truth = table[y]
    t = fit_temperature(oof, cats)
    z = oof / t
    p = np.exp(z - z.max(1, keepdims=True))
    adv = (p / p.sum(1, keepdims=True)) @ table
    per_fold = {"+".join(f): ccc(adv[np.isin(spk_a, f)], truth[np.isin(spk_a, f)]).round(4).tolist() for f in FOLDS}
    pred = oof.argmax(1)
    recalls = [float(np.mean(pred[y == k] == k)) for k in range(len(CATEGORIES))]
    return {
        "config": asdict(cfg),
        "temperature": t,
        "pooled_ccc": ccc(adv, truth).round(4).tolist(),
        "fold_mean_ccc": np.mean(list(per_fold.values()), axis=0).round(4).tolist(),
        "per_fold_ccc": per_fold,
        "unweighted_accuracy": round(float(np.mean(recalls)), 4),
        "recall": dict(zip(CATEGORIES, [round(r, 4) for r in recalls], strict=True)),
    }


def read_emodb(folder: Path) -> tuple[np.ndarray, list[str], list[str]]:
    """All clips as (N, 32000) float32 (cut or zero-padded to 2 s), with their speakers and categories."""
    with (folder / "labels.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    x = np.zeros((len(rows), WINDOW_SAMPLES), np.float32)
    for i, r in enumerate(rows):
        clip = load(folder / r["file"])[:WINDOW_SAMPLES]
        x[i, : len(clip)] = clip
    return x, [r["speaker"] for r in rows], [r["emotion"] for r in rows]


def fit_temperature(scores: np.ndarray, cats: list[str]) -> float:
    """Temperature minimising the negative log-likelihood of out-of-fold logits (grid search)."""
    y = np.array([CATEGORIES.index(c) for c in cats])
    best = (np.inf, 1.0)
    for t in np.exp(np.linspace(np.log(0.5), np.log(5.0), 60)):
        z = scores / t
        z = z - z.max(axis=1, keepdims=True)
        nll = float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))
        best = min(best, (nll, float(t)))
    return best[1]


def export(model: nn.Module, out: Path, report: dict[str, object], *, name: str) -> None:
    """Export a teacher to ONNX (input ``waveform`` (N, T), output ``adv`` (N, 3)) with the parity check,
    its cross-validation ``report`` and ``name`` in the metadata; written to a temporary name, then renamed."""
    from edgeser.export.onnx import export as export_onnx
    from edgeser.export.onnx import set_metadata
    from edgeser.recipe import load_recipe
    from edgeser.runtime.engine import InputSpec

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".tmp-{out.name}")
    spec = InputSpec(window_samples=WINDOW_SAMPLES)
    export_onnx(model, tmp, recipe=load_recipe("rpi"), spec=spec)
    set_metadata(
        tmp,
        spec,
        {
            "model": name,
            "targets": "NRC VAD Lexicon v1.0 category words",
            "cross_validation": json.dumps(report),
        },
    )
    tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="EmoDB folder with labels.csv and audio/")
    p.add_argument("--out", type=Path, help="ONNX file for the export-fold model (skip export if omitted)")
    p.add_argument("--report", type=Path, help="JSON file for the cross-validation scores")
    p.add_argument("--cache", type=Path, help="npz cache of the extracted functionals (clean and augmented)")
    p.add_argument("--l2", type=float, nargs="+", default=[FitConfig.l2], help="L2 values to select from by CV")
    p.add_argument("--copies", type=int, default=FitConfig.copies)
    p.add_argument("--hidden", type=int, default=FitConfig.hidden)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    x, spk, cats = read_emodb(args.data)
    if args.cache and args.cache.is_file():
        data = np.load(args.cache)
        clean, aug = data["clean"], data["aug"]
    else:
        clean = extract(x)
        aug = np.stack([extract(a) for a in augmented_copies(x, args.copies, seed=0)])
        if args.cache:
            np.savez(args.cache, clean=clean, aug=aug)
    print(f"functionals: {clean.shape[1]} per clip, {len(aug)} augmented copies ({time.time() - t0:.0f} s)")
    results = []
    for l2 in args.l2:
        cfg = FitConfig(l2=l2, copies=args.copies, hidden=args.hidden)
        oof, models = cross_validate(clean, aug, spk, cats, cfg)
        rep = report(oof, spk, cats, cfg)
        print(f"l2 {l2:g}: UA {rep['unweighted_accuracy']:.3f}  pooled CCC A/D/V {rep['pooled_ccc']}")
        results.append((float(np.mean(rep["pooled_ccc"])), rep, models))
    _, best, models = max(results, key=lambda r: r[0])
    print(json.dumps(best, indent=1))
    if args.report:
        args.report.write_text(json.dumps(best, indent=1), encoding="utf-8")
    if args.out:
        model = models["+".join(EXPORT_FOLD)]
        model.temperature.fill_(float(best["temperature"]))
        export(model, args.out, best, name="edgeser reference teacher (functionals + logistic regression)")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
