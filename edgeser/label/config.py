"""How audio is cut and labelled (:class:`LabelConfig`) and what a run did (:class:`LabelResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..audio import SAMPLING_RATE
from ..errors import InputError

__all__ = ["LabelConfig", "LabelResult", "PARALLEL"]

PARALLEL = ("process", "thread")
"""Kinds of local workers."""


@dataclass
class LabelConfig:
    """How audio is cut and labelled."""

    window_seconds: float = 2.0
    """Window length in seconds; a shorter file is zero-padded to one window."""
    hop_seconds: float | None = None
    """Hop between windows in seconds (default: the window length, no overlap)."""
    batch_size: int = 16
    """Windows per teacher call."""
    workers: int = 1
    """Parallel workers: processes or threads (see ``parallel``)."""
    parallel: str = "process"
    """``process``: each worker process loads its own teacher (no shared state, start-up cost);
    ``thread``: threads share one teacher (no start-up cost; the engine must release the GIL, as
    onnxruntime and torch do). A teacher passed in already loaded always uses threads."""
    threads: int = 1
    """Intra-op threads of each worker's engine."""
    skip_errors: bool = False
    """Skip unreadable audio (listed in the result) instead of stopping with an error."""

    @property
    def window_samples(self) -> int:
        """The window in samples at 16 kHz."""
        return int(round(self.window_seconds * SAMPLING_RATE))

    @property
    def hop_samples(self) -> int:
        """The hop in samples at 16 kHz."""
        return int(round((self.hop_seconds or self.window_seconds) * SAMPLING_RATE))

    def validate(self) -> None:
        """Raises InputError for a number outside its range (:data:`edgeser.limits.LABEL`) or another --parallel."""
        from ..limits import LABEL, check

        check(self, LABEL)
        if self.parallel not in PARALLEL:
            raise InputError(f"--parallel must be one of {', '.join(PARALLEL)}, got {self.parallel!r}")


@dataclass
class LabelResult:
    """What a labelling run did."""

    out: Path
    """The labels CSV."""
    rows: int = 0
    """Labelled windows written."""
    files: int = 0
    """Files labelled (from the cache or fresh)."""
    cached_files: int = 0
    """Files whose labels came from the cache."""
    teacher_windows: int = 0
    """Windows the teacher was run on in this run."""
    skipped: list[str] = field(default_factory=list)
    """Files skipped as unreadable (``path: reason``), with ``skip_errors``."""
