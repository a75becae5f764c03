"""How audio is cut and labelled (:class:`LabelConfig`) and what a run did (:class:`LabelResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..audio import SAMPLING_RATE
from ..errors import InputError

__all__ = ["LabelConfig", "LabelResult", "PARALLEL", "ENGINES"]

PARALLEL = ("process", "thread")
"""Kinds of local workers."""
ENGINES = ("local", "ray")
"""Where the work runs: this machine's workers, or a Ray cluster (``pip install 'edgeser[ray]'``)."""


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
    device: str = "auto"
    """Where the teacher runs: ``auto`` (CUDA when there is one), ``cpu``, ``cuda`` or ``cuda:N``."""
    precision: str = "fp32"
    """``fp32``, or ``bf16``/``fp16`` autocast on CUDA (transformers teachers; part of the cache key)."""
    engine: str = "local"
    """``local`` (this machine's workers) or ``ray`` (a Ray Data pipeline; ``workers`` is its actor pool)."""
    ray_address: str | None = None
    """With ``engine="ray"``: the cluster to join (``auto``, or its ``host:port``) and leave running; None starts
    a local Ray instance sized to this machine and stops it at the end. A Ray Client address (``ray://``) is
    refused: Ray Data pipelines do not run through Ray Client, so the run must start on a node of the cluster."""
    gpus_per_worker: float = 0.0
    """With ``engine="ray"``: GPUs each teacher actor reserves (0: none; fractions share a GPU)."""

    @property
    def window_samples(self) -> int:
        """The window in samples at 16 kHz."""
        return int(round(self.window_seconds * SAMPLING_RATE))

    @property
    def hop_samples(self) -> int:
        """The hop in samples at 16 kHz."""
        return int(round((self.hop_seconds or self.window_seconds) * SAMPLING_RATE))

    def validate(self) -> None:
        """Check every setting (numbers against :data:`edgeser.limits.LABEL`).

        The device is resolved here when the teacher runs on this machine (the local engine, or a Ray instance
        started here), so a CUDA request on a machine without CUDA fails before any work; on a cluster that
        is joined, the teacher actors resolve it where they run.

        Raises:
            InputError: a number out of range, an unknown --parallel, --engine, --device or --precision, a
                device this machine lacks, Ray options without ``--engine ray``, or a Ray Client address.
        """
        from ..devices import check_words, resolve
        from ..limits import GPUS_PER_WORKER, LABEL, check

        check(self, LABEL)
        if self.parallel not in PARALLEL:
            raise InputError(f"--parallel must be one of {', '.join(PARALLEL)}, got {self.parallel!r}")
        if self.engine not in ENGINES:
            raise InputError(f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.engine != "ray" and (self.ray_address is not None or self.gpus_per_worker):
            raise InputError("--ray-address and --gpus-per-worker need --engine ray")
        if self.ray_address is not None and self.ray_address.strip().lower().startswith("ray://"):
            raise InputError(f"--ray-address {self.ray_address}: Ray Data pipelines do not run through Ray Client "
                             "(ray://); run edgeser on a node of the cluster with --ray-address auto or HOST:6379 "
                             "(see docs/scale.md)")
        if self.gpus_per_worker not in GPUS_PER_WORKER:
            raise InputError(f"--gpus-per-worker must be in [{GPUS_PER_WORKER.lo:g}, {GPUS_PER_WORKER.hi:g}], "
                             f"got {self.gpus_per_worker:g}")
        if self.engine == "ray" and self.ray_address is not None:  # the actors resolve it on their nodes
            check_words(self.device, self.precision)
            return
        placement = resolve(self.device, self.precision)
        if self.gpus_per_worker and not placement.is_cuda:
            why = "with --device cpu" if self.device.strip().lower() == "cpu" else "no CUDA device is available here"
            raise InputError(f"--gpus-per-worker {self.gpus_per_worker:g}: the teacher would run on the CPU ({why}); "
                             "use --device auto or cuda, or join a cluster with --ray-address")


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
