"""Teacher labelling: audio files -> windows -> teacher A/D/V -> a labels CSV, with a resumable cache.

The cache is a small SQLite file keyed by the audio's sha256, the teacher's identity and the window
and hop lengths, so a re-run (or a run on the same audio under another name) skips finished files.
Each finished file is committed to the cache at once, so an interrupted run loses at most the files
in flight; the labels file (CSV, or Parquet) is written atomically at the end, in the order of the input.

Work is spread over ``workers``: local processes, each loading its own copy of the teacher (when the
teacher is given as a path), or threads sharing one teacher object (when a loaded teacher is passed
in); or, with ``engine="ray"``, a Ray Data pipeline whose actor pool holds one teacher per worker, on
this machine or a cluster. Each worker's engine uses ``threads`` intra-op threads, on ``device``.

The parts: :mod:`.config` (settings and result), :mod:`.manifest` (the input, in chunks), :mod:`.cache`,
:mod:`.plan` (hashing and queueing, and the input again for the output), :mod:`.batch` (reading a batch of
files into windows, and the teacher on them: the per-batch work of any engine), :mod:`.workers` (the local
process or thread pool), :mod:`.ray_engine` (Ray Data), :mod:`.output` (CSV, Parquet) and :mod:`.run`.
"""

from __future__ import annotations

from ..labelfile import REQUIRED_COLUMNS, LabelTable, read_labels
from .cache import default_cache_path
from .config import ENGINES, LabelConfig, LabelResult
from .manifest import Manifest
from .output import COLUMNS
from .run import file_sha256, label

__all__ = ["LabelConfig", "LabelResult", "LabelTable", "COLUMNS", "REQUIRED_COLUMNS", "ENGINES", "Manifest", "label",
           "read_labels", "file_sha256", "default_cache_path"]
