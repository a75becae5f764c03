"""The data a student trains on: which speakers are held out, and the labelled windows read once from audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..audio import SAMPLING_RATE, load
from ..errors import InputError
from ..fileio import sha256_bytes, sha256_file
from ..labelfile import LabelTable
from ..progress import Reporter, silent
from .config import DistillConfig

__all__ = ["choose_val_speakers", "load_windows"]


def choose_val_speakers(table: LabelTable, config: DistillConfig) -> tuple[np.ndarray, list[str]]:
    """Boolean mask of validation windows and the held-out groups (speakers, or files if speakers are unknown).

    Without ``config.val_speakers``, the groups are ordered by the sha256 of ``"<seed>:<name>"`` and the
    first ``val_fraction`` of them are held out: the same split for the same seed on any machine.

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
        held = sorted(sorted(names, key=lambda n: sha256_bytes(f"{config.seed}:{n}"))[:count])
    mask = np.isin(groups, held)
    if mask.all() or not mask.any():
        raise InputError(
            f"cannot split {len(names)} {'speaker' if by_speaker else 'file'}(s) into training "
            "and validation; label more audio or choose --val-speakers",
            path=table.path,
        )
    return mask, held


def load_windows(table: LabelTable, window_samples: int | None = None, *,
                 progress: Reporter = silent) -> np.ndarray:
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
    task = progress.start("reading audio", len(by_file))
    for f, rows in by_file.items():
        if not f.is_file():
            raise InputError("audio file is missing (moved or deleted since labelling?)", path=f)
        expected = {table.sha256[i] for i in rows} - {""}
        if expected and sha256_file(f) not in expected:
            raise InputError("audio changed since labelling (sha256 differs); label it again", path=f)
        x = load(f)
        for i in rows:
            start = int(round(table.start_s[i] * SAMPLING_RATE))
            seg = x[start : start + min(window_samples, int(round(table.duration_s[i] * SAMPLING_RATE)))]
            out[i, : len(seg)] = seg
        progress.advance(task)
    return out
