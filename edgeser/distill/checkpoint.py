"""Checkpoints of a run: the best and the last epoch's student, and the training state a run resumes from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError, OutputError
from ..fileio import replacing
from ..labelfile import LabelTable
from .config import DistillConfig
from .run import _Run

__all__ = ["checkpoint_paths"]


def checkpoint_paths(out: Path) -> tuple[Path, Path]:
    """(last checkpoint, training state) beside ``out``."""
    stem = out.name[: -len(".safetensors")] if out.name.endswith(".safetensors") else out.name
    return out.with_name(f"{stem}.last.safetensors"), out.with_name(f"{stem}.state.pt")


def _save_state(path: Path, state: dict[str, Any]) -> None:
    try:
        with replacing(path, suffix=".pt") as tmp:
            torch.save(state, tmp)
    except OSError as exc:
        raise OutputError(f"cannot write training state ({exc.strerror})", path=path) from None


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
    """The training facts stored in a checkpoint's metadata (``config_of`` reads ``config`` back)."""
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
        "device": run.placement.device,
        "precision": run.placement.precision,
        "processes": run.world.size,
    }


def _rank_state(run: _Run) -> dict[str, Any]:
    """The random state of this process (each rank of a distributed run augments with its own)."""
    return {"augment_rng": json.dumps(run.aug.rng.bit_generator.state), "torch_rng": torch.get_rng_state()}


def _checkpoint(
    run: _Run, out: Path, epoch: int, scores: dict[str, float], config: DistillConfig, facts: dict[str, Any],
    ranks: list[dict[str, Any]] | None = None,
) -> None:
    """Save the best (if this epoch is), the last checkpoint and the training state, each atomically.

    ``ranks``: every rank's :func:`_rank_state` in a distributed run (rank 0 writes them all).
    """
    from .. import models

    last, state_path = checkpoint_paths(out)
    mean = float(np.mean(list(scores.values())))
    if mean > run.best:
        run.best, run.best_epoch = mean, epoch
        facts["best_epoch"] = epoch
        models.save(run.evaluated, out, extra=facts)
    models.save(run.evaluated, last, extra=facts)
    averaged = {} if run.ema is None else {"model": run.model.state_dict(), "ema": run.ema.state_dict()}
    if ranks is not None:
        averaged["ranks"] = ranks
    if run.scaler is not None:
        averaged["scaler"] = run.scaler.state_dict()
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
            "world_size": run.world.size,
        },
    )


def _resume(run: _Run, out: Path, config: DistillConfig) -> None:
    """Load the last checkpoint and the training state beside ``out`` into ``run`` (weights, optimiser, RNGs)."""
    from .. import models
    from ..userfiles import load_torch_state

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
        run.rng.bit_generator.state = json.loads(state["order_rng"])
        _resume_rank_state(run, state, config)
        if run.scaler is not None and "scaler" in state:
            run.scaler.load_state_dict(state["scaler"])
        run.history = json.loads(state["history"])
        run.best, run.best_epoch, run.start_epoch = float(state["best"]), int(state["best_epoch"]), int(state["epoch"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:  # a state of another run or tool
        raise InputError(f"not a training state written by edgeser distill ({type(exc).__name__}: "
                         f"{(str(exc).splitlines() or [''])[0][:120]})", path=state_path) from None


def _resume_rank_state(run: _Run, state: dict[str, Any], config: DistillConfig) -> None:
    """Restore this rank's random state: its own when the saved run had as many processes, rank 0's for rank 0,
    else a fresh one seeded by (seed, rank, epoch)."""
    ranks = state.get("ranks")
    rank = run.world.rank
    if isinstance(ranks, list) and len(ranks) == run.world.size:
        mine = ranks[rank]
    elif rank == 0:
        mine = state
    else:
        run.aug.rng = np.random.default_rng([config.seed, rank, int(state["epoch"])])
        torch.manual_seed(config.seed + rank + int(state["epoch"]))
        return
    run.aug.rng.bit_generator.state = json.loads(mine["augment_rng"])
    torch.set_rng_state(mine["torch_rng"])
