"""The two stages that label a batch of files: reading them into windows, and the teacher on those windows.

Every engine runs these two functions and nothing else on the audio, so engines cannot disagree on
the labels: the local workers call :func:`read_batch` then :func:`label_batch` on a few files at a
time; a distributed engine can run the reading as CPU tasks and the labelling where a teacher is held.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..audio import SAMPLING_RATE, load, windows
from ..errors import InputError

__all__ = ["WindowBatch", "FileLabels", "read_batch", "label_batch"]

FileLabels = tuple[str, list[list[float]] | str]
"""One file's outcome: (path, ``[[start_s, a, d, v], ...]``), or (path, the reason it was skipped)."""


@dataclass(frozen=True)
class WindowBatch:
    """The windows of a few files, stacked: what the teacher stage takes."""

    paths: tuple[str, ...]
    """Files that were read, in order."""
    counts: tuple[int, ...]
    """Windows of each file in ``paths``."""
    windows: np.ndarray
    """(N, window_samples) float32: the files' windows one after the other."""
    hop: int
    """Hop between a file's windows, in samples."""
    errors: tuple[tuple[str, str], ...] = ()
    """(path, reason) of files that could not be read (only with ``skip_errors``)."""
    lengths: np.ndarray | None = None
    """(N,) valid samples of each window (a file shorter than one window is zero-padded); None: all whole."""


def read_batch(paths: Iterable[str], window: int, hop: int, *, skip_errors: bool = False) -> WindowBatch:
    """Read and window files (a file shorter than one window is zero-padded to one window).

    Raises:
        InputError: a file is missing or breaks a rule of the audio reader (unless ``skip_errors``).
    """
    read: list[tuple[str, np.ndarray, int]] = []
    errors: list[tuple[str, str]] = []
    for p in paths:
        try:
            audio = load(p)
            read.append((p, windows(audio, window, hop), min(len(audio), window)))
        except InputError as exc:
            if not skip_errors:
                raise
            errors.append((p, exc.message))
    stacked = (np.concatenate([w for _, w, _ in read]).astype(np.float32, copy=False) if read
               else np.zeros((0, window), np.float32))
    lengths = np.concatenate([np.full(len(w), n) for _, w, n in read]) if read else np.zeros(0, np.int64)
    return WindowBatch(tuple(p for p, _, _ in read), tuple(len(w) for _, w, _ in read), stacked, hop, tuple(errors),
                       None if (lengths == window).all() else lengths)


def label_batch(teacher: Any, batch: WindowBatch, *, batch_size: int) -> list[FileLabels]:
    """Run the teacher on a batch's windows, ``batch_size`` at a time; one entry per file (skipped ones first).

    A padding-aware teacher (``teacher.padding_aware``) is told the valid length of each window, so a file
    shorter than one window is labelled as it is, not with the zeros it was padded with.

    Raises:
        ValueError: the teacher rejected a batch, or returned another shape or non-finite values.
    """
    results: list[FileLabels] = list(batch.errors)
    x = batch.windows
    if not len(x):
        return results
    lengths = batch.lengths if getattr(teacher, "padding_aware", False) else None  # only such a teacher takes them
    out = np.concatenate([
        np.asarray(teacher(np.ascontiguousarray(x[i : i + batch_size]), lengths[i : i + batch_size])
                   if lengths is not None else teacher(np.ascontiguousarray(x[i : i + batch_size])))
        for i in range(0, len(x), batch_size)
    ])
    if out.shape != (len(x), 3) or not np.isfinite(out).all():
        raise ValueError(f"teacher returned shape {out.shape} or non-finite values for {len(x)} windows")
    at = 0
    for path, count in zip(batch.paths, batch.counts, strict=True):
        results.append((path, [[i * batch.hop / SAMPLING_RATE, *map(float, out[at + i])] for i in range(count)]))
        at += count
    return results
