"""Distillation: train a registered student on a teacher's labels only.

The labels CSV comes from :func:`edgeser.label.label`. Windows of the labelled audio are loaded once
(each file's sha256 is checked against the one recorded at labelling time), some speakers are held out
for validation, and the student is trained on augmented windows (:mod:`edgeser.augment`) to match the
teacher's arousal, dominance and valence with a CCC-based loss, MSE, or both.

After every epoch the student is scored against the teacher on the held-out speakers (CCC per
dimension, clean audio); the best epoch (highest mean CCC) is saved at ``out``, the last one at
``<out stem>.last.safetensors`` with its optimiser state in ``<out stem>.state.pt``, so a run can
resume where it stopped.

Options aimed at a student that follows the teacher more closely on unseen speakers (their use for the
default student is measured in its model card): ``ema`` validates and saves an exponential moving average of the weights
instead of the last step's weights, and ``init`` starts from an earlier student checkpoint (fine-tuning
it on new labels). ``loss_weights`` weighs arousal, dominance and valence in the loss.

With ``teacher`` (the teacher that wrote the labels, checked by its identity) every augmented training
window is labelled again by the teacher as the student sees it: a noisy, mixed or sped-up window gets the
teacher's output for that very window instead of the clean window's label ("consistent" function
matching, Beyer et al., CVPR 2022). It suits fast teachers such as the embedded reference teacher;
validation still uses the labels file.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .audio import SAMPLING_RATE, load
from .augment import AugmentConfig, Augmenter
from .errors import InputError, OutputError
from .fileio import replacing
from .label import LabelTable, file_sha256, read_labels
from .metrics import DIMENSIONS, ccc

__all__ = [
    "DistillConfig",
    "DistillResult",
    "LOSSES",
    "distill",
    "ccc_loss",
    "checkpoint_paths",
    "choose_val_speakers",
    "config_of",
    "load_windows",
]

LOSSES = ("ccc", "mse", "ccc+mse")
"""Loss choices: 1 - CCC averaged over A/D/V, mean squared error, or their sum."""
WARMUP_FRACTION = 0.05
"""Share of the steps with a linear learning-rate warm-up before the cosine decay."""
EVAL_BATCH = 64
"""Windows per forward pass during validation."""


@dataclass
class DistillConfig:
    """How a student is distilled from teacher labels."""

    student: str = "wav2small"
    """Registered student name (see :func:`edgeser.models.list_models`)."""
    student_config: dict[str, Any] = field(default_factory=dict)
    """Hyper-parameter overrides for the student."""
    epochs: int = 20
    """Epochs to train (an epoch is a pass over the training windows, or ``windows_per_epoch`` of them)."""
    batch_size: int = 16
    """Windows per step."""
    lr: float = 3e-3
    """Peak AdamW learning rate (linear warm-up, then cosine decay to zero)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    loss: str = "ccc+mse"
    """``ccc``, ``mse`` or ``ccc+mse``."""
    loss_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Weights of arousal, dominance and valence in the loss (a weighted mean: only their ratios matter)."""
    ema: float = 0.0
    """Decay per step of an exponential moving average of the weights (0: off). When on, the average is
    what is validated and saved (best and last); the raw weights stay in the training state."""
    init: str | None = None
    """A student checkpoint (.safetensors) of the same layout to start from instead of a random init."""
    teacher: str | None = None
    """Label every augmented training window again with this teacher (see the module docstring); it must
    be the teacher that wrote the labels (``default``, a path, or several joined with ``+``)."""
    val_speakers: list[str] | None = None
    """Speakers held out for validation (default: about ``val_fraction`` of them, chosen by ``seed``)."""
    val_fraction: float = 0.2
    """Share of speakers (or of files, when speakers are unknown) held out when ``val_speakers`` is unset."""
    window_seconds: float | None = None
    """Training window in seconds (default: the longest labelled window)."""
    windows_per_epoch: int | None = None
    """Training windows drawn (without replacement) per epoch; default: all of them."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Waveform augmentation of the training windows (never of the validation windows)."""
    seed: int = 0
    """Seed of initialisation, order, split and augmentation."""
    threads: int = 1
    """torch intra-op threads."""

    def validate(self) -> None:
        """Raises InputError for an unknown loss, a number outside its range (:data:`edgeser.limits.DISTILL`)
        or a student that cannot be built.

        Called before any labels or audio are read, so a mistyped option fails at once.
        """
        from . import models
        from .limits import DISTILL, LOSS_WEIGHT, check

        check(self, DISTILL)
        if self.loss not in LOSSES:
            raise InputError(f"unknown loss '{self.loss}' (choose from {', '.join(LOSSES)})")
        if not 0 < self.val_fraction < 1:
            raise InputError(f"val_fraction must be between 0 and 1, got {self.val_fraction}")
        w = self.loss_weights
        if len(w) != len(DIMENSIONS) or not all(x in LOSS_WEIGHT for x in w) or not sum(w) > 0:
            raise InputError(f"--loss-weights needs 3 numbers (A D V) {LOSS_WEIGHT.describe()}, not all 0; "
                             f"got {list(w)}")
        with torch.random.fork_rng(devices=[]):  # building it draws initial weights: leave the caller's RNG alone
            models.create_model(self.student, **self.student_config)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DistillConfig:
        """The inverse of :meth:`to_dict` (unknown keys, e.g. from a newer edgeser, are ignored)."""
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if isinstance(known.get("augment"), dict):
            known["augment"] = AugmentConfig.from_dict(known["augment"])
        if isinstance(known.get("loss_weights"), list):
            known["loss_weights"] = tuple(known["loss_weights"])
        return cls(**known)


def config_of(checkpoint: str | Path) -> DistillConfig:
    """The configuration a student checkpoint was distilled with, read from its metadata.

    ``dataclasses.replace(config_of(DEFAULT_STUDENT), seed=1)`` is the embedded default's recipe with
    another seed (its labels file is in the metadata too, as ``labels``).

    Raises:
        InputError: the file is not a readable safetensors file or was not written by ``edgeser distill``.
    """
    from . import models

    extra = models.read_metadata(checkpoint).get("extra")
    try:
        saved = json.loads(extra)["config"] if extra else None
    except (ValueError, KeyError, TypeError):
        saved = None
    if not isinstance(saved, dict):
        raise InputError("no distillation settings in its metadata (not written by edgeser distill)",
                         path=checkpoint)
    return DistillConfig.from_dict(saved)


@dataclass
class DistillResult:
    """What a distillation run produced."""

    best: Path
    """Checkpoint of the best epoch (highest mean validation CCC)."""
    last: Path
    """Checkpoint of the last epoch."""
    best_epoch: int
    """1-based epoch of the best checkpoint."""
    best_ccc: dict[str, float]
    """Validation CCC(student, teacher) per dimension at the best epoch."""
    history: list[dict[str, Any]]
    """Per epoch: epoch, train loss, validation CCC per dimension, seconds."""
    train_windows: int
    """Windows trained on."""
    val_windows: int
    """Windows validated on."""
    val_speakers: list[str]
    """Held-out speakers (or held-out files when speakers are unknown)."""


def checkpoint_paths(out: Path) -> tuple[Path, Path]:
    """(last checkpoint, training state) beside ``out``."""
    stem = out.name[: -len(".safetensors")] if out.name.endswith(".safetensors") else out.name
    return out.with_name(f"{stem}.last.safetensors"), out.with_name(f"{stem}.state.pt")


def ccc_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """1 - CCC, per column of (B, D) batches, averaged over the columns (weighted by ``weights``)."""
    pm, tm = pred.mean(0), target.mean(0)
    pv, tv = pred.var(0, unbiased=False), target.var(0, unbiased=False)
    cov = ((pred - pm) * (target - tm)).mean(0)
    per_column = 1.0 - 2.0 * cov / (pv + tv + (pm - tm) ** 2 + 1e-8)
    return per_column.mean() if weights is None else (per_column * weights).sum() / weights.sum()


def _loss(kind: str, pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    if kind == "ccc":
        return ccc_loss(pred, target, weights)
    mse = (((pred - target) ** 2).mean(0) * weights).sum() / weights.sum()
    return mse if kind == "mse" else mse + ccc_loss(pred, target, weights)


# --------------------------------------------------------------------------- data


def _stable_hash(text: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{text}".encode()).hexdigest()


def choose_val_speakers(table: LabelTable, config: DistillConfig) -> tuple[np.ndarray, list[str]]:
    """Boolean mask of validation windows and the held-out groups (speakers, or files if speakers are unknown).

    Raises:
        InputError: a requested speaker is not in the labels, or the split leaves one side empty.
    """
    by_speaker = all(table.speakers)
    groups = np.array(table.speakers if by_speaker else [str(f) for f in table.files])
    names = sorted(set(groups.tolist()))
    if config.val_speakers:
        if not by_speaker:
            raise InputError(
                "--val-speakers given but the labels have no speaker column values", path=table.path
            )
        unknown = sorted(set(config.val_speakers) - set(names))
        if unknown:
            raise InputError(
                f"validation speaker(s) {', '.join(unknown)} not in the labels "
                f"(speakers: {', '.join(names)})",
                path=table.path,
            )
        held = sorted(set(config.val_speakers))
    else:
        count = max(1, int(round(config.val_fraction * len(names))))
        held = sorted(sorted(names, key=lambda n: _stable_hash(n, config.seed))[:count])
    mask = np.isin(groups, held)
    if mask.all() or not mask.any():
        raise InputError(
            f"cannot split {len(names)} {'speaker' if by_speaker else 'file'}(s) into training "
            "and validation; label more audio or choose --val-speakers",
            path=table.path,
        )
    return mask, held


def load_windows(table: LabelTable, window_samples: int | None = None, *, progress: Any = None) -> np.ndarray:
    """Read every labelled window once: (N, window_samples) float32, zero-padded at the end.

    ``window_samples`` defaults to the table's longest window (what ``edgeser distill`` trains on unless
    given ``--window-seconds``).

    Raises:
        InputError: an audio file is missing, unreadable or changed since labelling (sha256 differs).
    """
    if window_samples is None:
        window_samples = int(round(float(table.duration_s.max()) * SAMPLING_RATE))
    out = np.zeros((len(table), window_samples), dtype=np.float32)
    by_file: dict[Path, list[int]] = {}
    for i, f in enumerate(table.files):
        by_file.setdefault(f, []).append(i)
    task = progress.add_task("reading audio", total=len(by_file), info="") if progress is not None else None
    for f, rows in by_file.items():
        if not f.is_file():
            raise InputError("audio file is missing (moved or deleted since labelling?)", path=f)
        expected = {table.sha256[i] for i in rows} - {""}
        if expected and file_sha256(f) not in expected:
            raise InputError("audio changed since labelling (sha256 differs); label it again", path=f)
        x = load(f)
        for i in rows:
            start = int(round(table.start_s[i] * SAMPLING_RATE))
            seg = x[start : start + min(window_samples, int(round(table.duration_s[i] * SAMPLING_RATE)))]
            out[i, : len(seg)] = seg
        if task is not None:
            progress.advance(task)
    return out


# --------------------------------------------------------------------------- training


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate(
            [model(torch.from_numpy(x[i : i + EVAL_BATCH])).numpy() for i in range(0, len(x), EVAL_BATCH)]
        )


def _schedule(total_steps: int) -> Any:
    warm = max(1, int(WARMUP_FRACTION * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))

    return factor


def _save_state(path: Path, state: dict[str, Any]) -> None:
    try:
        with replacing(path, suffix=".pt") as tmp:
            torch.save(state, tmp)
    except OSError as exc:
        raise OutputError(f"cannot write training state ({exc.strerror})", path=path) from None


@dataclass
class _Run:
    """Everything one training run carries between epochs."""

    model: Any
    """The trained weights."""
    teacher: Any
    """The teacher that labels augmented windows online, or None."""
    ema: Any
    """The moving average of the model's weights (a torch AveragedModel), or None."""
    opt: Any
    sched: Any
    aug: Augmenter
    rng: np.random.Generator
    history: list[dict[str, Any]]
    best: float = -math.inf
    best_epoch: int = 0
    start_epoch: int = 0

    @property
    def evaluated(self) -> Any:
        """The model that is validated and saved: the moving average when there is one."""
        return self.model if self.ema is None else self.ema.module


def _init_weights(model: Any, path: Path) -> None:
    from . import models

    source = models.load(path)
    if type(source) is not type(model):
        raise InputError(f"--init is a {source.arch} checkpoint, the student is a {model.arch}", path=path)
    try:
        model.load_state_dict(source.state_dict())
    except RuntimeError as exc:
        raise InputError(f"--init checkpoint does not fit the student: {str(exc).splitlines()[-1].strip()}",
                         path=path) from None


def _ema_step(decay: float) -> Any:
    """An AveragedModel ``avg_fn``: EMA whose decay ramps up as (1 + n) / (10 + n) to ``decay``.

    Without the ramp a run from random weights would average in its first, random steps for a long time
    (0.998 ** 500 is still 0.37): validated early, such an average predicts a constant.
    """

    def step(averaged: torch.Tensor, current: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        d = min(decay, (1.0 + float(n)) / (10.0 + float(n)))
        return averaged + (current - averaged) * (1.0 - d)

    return step


def _online_teacher(config: DistillConfig, table: LabelTable) -> Any:
    if not config.teacher:
        return None
    from .teachers import load_teacher

    teacher = load_teacher(config.teacher, threads=config.threads)
    if teacher.identity != table.teacher:
        raise InputError(
            f"--teacher {config.teacher} is {teacher.identity}, but the labels were made by {table.teacher}",
            path=table.path,
        )
    return teacher


def _new_run(config: DistillConfig, steps_per_epoch: int, teacher: Any = None) -> _Run:
    from torch.optim.swa_utils import AveragedModel

    from . import models

    torch.manual_seed(config.seed)
    model = models.create_model(config.student, **config.student_config)
    if config.init:
        _init_weights(model, Path(config.init))
    ema = AveragedModel(model, avg_fn=_ema_step(config.ema), use_buffers=True) if config.ema else None
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(config.epochs * steps_per_epoch))
    aug, order = Augmenter(config.augment, seed=config.seed), np.random.default_rng(config.seed)
    return _Run(model, teacher, ema, opt, sched, aug, order, [])


def _resume(run: _Run, out: Path, config: DistillConfig) -> None:
    from . import models
    from .userfiles import load_torch_state

    last, state_path = checkpoint_paths(out)
    if not (last.is_file() and state_path.is_file()):
        raise InputError(f"nothing to resume: {last.name} and {state_path.name} are needed", path=out.parent)
    state = load_torch_state(state_path, what="training state")
    try:
        saved = json.loads(state["config"])
        if saved["student"] != config.student:
            raise InputError(f"the saved run trains '{saved['student']}', not '{config.student}'", path=state_path)
        if bool(saved.get("ema")) != (run.ema is not None):
            raise InputError("the saved run and this one differ in --ema; resume with the same setting",
                             path=state_path)
        if run.ema is None:
            run.model.load_state_dict(models.load(last).state_dict())
        else:
            run.model.load_state_dict(state["model"])
            run.ema.load_state_dict(state["ema"])
        run.opt.load_state_dict(state["optimizer"])
        run.sched.load_state_dict(state["scheduler"])
        run.aug.rng.bit_generator.state = json.loads(state["augment_rng"])
        run.rng.bit_generator.state = json.loads(state["order_rng"])
        torch.set_rng_state(state["torch_rng"])
        run.history = json.loads(state["history"])
        run.best, run.best_epoch, run.start_epoch = float(state["best"]), int(state["best_epoch"]), int(state["epoch"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:  # a state of another run or tool
        raise InputError(f"not a training state written by edgeser distill ({type(exc).__name__}: "
                         f"{(str(exc).splitlines() or [''])[0][:120]})", path=state_path) from None


def _train_epoch(
    run: _Run, x: np.ndarray, y: np.ndarray, config: DistillConfig, window: int, on_step: Any
) -> float:
    run.model.train()
    weights = torch.tensor(config.loss_weights, dtype=torch.float32)
    order = run.rng.permutation(len(x))[: config.windows_per_epoch or len(x)]
    total, seen = 0.0, 0
    for start in range(0, len(order), config.batch_size):
        idx = order[start : start + config.batch_size]
        if len(idx) < 2:  # BatchNorm and the CCC loss need two windows
            continue
        xb, yb = run.aug.batch([x[i] for i in idx], y[idx], window)
        if run.teacher is not None:
            try:
                yb = np.asarray(run.teacher(xb), dtype=np.float32)
            except ValueError as exc:
                raise InputError(f"the teacher failed on a training batch: {exc}") from None
        loss = _loss(config.loss, run.model(torch.from_numpy(xb)), torch.from_numpy(yb), weights)
        run.opt.zero_grad()
        loss.backward()
        run.opt.step()
        run.sched.step()
        if run.ema is not None:
            run.ema.update_parameters(run.model)
        total += float(loss.detach()) * len(idx)
        seen += len(idx)
        on_step(len(idx), total / seen)
    return total / max(seen, 1)


def _facts(
    config: DistillConfig,
    table: LabelTable,
    held: list[str],
    run: _Run,
    epoch: int,
    scores: dict[str, float],
    n_train: int,
    n_val: int,
) -> dict[str, Any]:
    return {
        "kind": "distilled student",
        "labels": str(table.path),
        "teacher": table.teacher,
        "epoch": epoch,
        "epochs": config.epochs,
        "val_ccc": scores,
        "val_speakers": held,
        "train_windows": n_train,
        "val_windows": n_val,
        "config": config.to_dict(),
        "best_epoch": run.best_epoch,
    }


def _checkpoint(
    run: _Run, out: Path, epoch: int, scores: dict[str, float], config: DistillConfig, facts: dict[str, Any]
) -> None:
    from . import models

    last, state_path = checkpoint_paths(out)
    mean = float(np.mean(list(scores.values())))
    if mean > run.best:
        run.best, run.best_epoch = mean, epoch
        facts["best_epoch"] = epoch
        models.save(run.evaluated, out, extra=facts)
    models.save(run.evaluated, last, extra=facts)
    averaged = {} if run.ema is None else {"model": run.model.state_dict(), "ema": run.ema.state_dict()}
    _save_state(
        state_path,
        {
            **averaged,
            "epoch": epoch,
            "best": run.best,
            "best_epoch": run.best_epoch,
            "optimizer": run.opt.state_dict(),
            "scheduler": run.sched.state_dict(),
            "augment_rng": json.dumps(run.aug.rng.bit_generator.state),
            "order_rng": json.dumps(run.rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
            "history": json.dumps(run.history),
            "config": json.dumps(config.to_dict()),
        },
    )


def _bars(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        disable=not enabled,
        console=Console(stderr=True),
    )


def _epochs(
    run: _Run,
    data: tuple[np.ndarray, ...],
    config: DistillConfig,
    window: int,
    out: Path,
    table: LabelTable,
    held: list[str],
    bars: Any,
) -> None:
    """Train from ``run.start_epoch + 1`` to ``config.epochs``, validating and checkpointing each epoch."""
    xt, yt, xv, yv = data
    per_epoch = min(len(xt), config.windows_per_epoch or len(xt))
    for epoch in range(run.start_epoch + 1, config.epochs + 1):
        t0 = time.monotonic()
        before = f"val CCC {run.history[-1]['val_mean']:.3f}" if run.history else ""
        task = bars.add_task(f"epoch {epoch}/{config.epochs}", total=per_epoch, info=before)

        def step(n: int, avg: float, task: Any = task, before: str = before) -> None:
            bars.update(task, advance=n, info=f"loss {avg:.4f} {before}")

        loss = _train_epoch(run, xt, yt, config, window, step)
        scores = dict(zip(DIMENSIONS, map(float, ccc(_predict(run.evaluated, xv), yv)), strict=True))
        run.history.append(
            {
                "epoch": epoch,
                "loss": loss,
                "val_ccc": scores,
                "val_mean": float(np.mean(list(scores.values()))),
                "seconds": time.monotonic() - t0,
            }
        )
        _checkpoint(
            run, out, epoch, scores, config, _facts(config, table, held, run, epoch, scores, len(xt), len(xv))
        )
        shown = " ".join(f"{d[0].upper()} {s:.3f}" for d, s in scores.items())
        bars.update(task, info=f"loss {loss:.4f} val CCC {shown}")


def distill(
    labels: str | Path | LabelTable,
    out: str | Path,
    *,
    config: DistillConfig | None = None,
    resume: bool = False,
    progress: bool = False,
) -> DistillResult:
    """Train a student on teacher labels; keep the best and the last epoch.

    Args:
        labels: a labels CSV from ``edgeser label`` (or an already read :class:`LabelTable`).
        out: where the best checkpoint goes (``.safetensors``); the last epoch and the training state are
            written beside it (:func:`checkpoint_paths`).
        config: student, schedule, loss, split and augmentation.
        resume: continue a run that stopped (reads the last checkpoint and state beside ``out``).
        progress: show progress bars with the loss and the validation CCC (on stderr).

    Raises:
        InputError: bad labels (columns, NaN, missing or changed audio), an unknown student or loss, a split
            that leaves no training or no validation data, or nothing to resume.
        OutputError: a checkpoint cannot be written.
    """
    config = config or DistillConfig()
    config.validate()
    out = Path(out)
    torch.set_num_threads(config.threads)
    table = labels if isinstance(labels, LabelTable) else read_labels(labels)
    val_mask, held = choose_val_speakers(table, config)
    given = int(round(config.window_seconds * SAMPLING_RATE)) if config.window_seconds else None
    with _bars(progress) as bars:
        x = load_windows(table, given, progress=bars)  # None: the table's longest window
        window = x.shape[1]
        data = (x[~val_mask], table.targets[~val_mask], x[val_mask], table.targets[val_mask])
        per_epoch = min(len(data[0]), config.windows_per_epoch or len(data[0]))
        run = _new_run(config, max(1, per_epoch // config.batch_size), _online_teacher(config, table))
        if resume:
            _resume(run, out, config)
            if run.start_epoch >= config.epochs:
                raise InputError(
                    f"nothing to do: the saved run already finished {run.start_epoch} epochs "
                    "(raise --epochs to train longer)",
                    path=out,
                )
        out.parent.mkdir(parents=True, exist_ok=True)
        _epochs(run, data, config, window, out, table, held, bars)
    best = run.history[run.best_epoch - 1]["val_ccc"] if run.best_epoch else {}
    return DistillResult(
        out, checkpoint_paths(out)[0], run.best_epoch, best, run.history, len(data[0]), len(data[2]), held
    )
