"""Re-check a built bundle on new audio, without rebuilding it: ``edgeser drift BUNDLE --audio DIR``.

Every bundle keeps its float model beside the shipped one (``reference/``, listed in the manifest with
its sha256). This module verifies the bundle, cuts the new audio into windows of the bundle's input
length, labels them with a teacher, runs the float reference and the shipped model through
:mod:`edgeser.runtime` (as the build did), and judges the shipped model against the budget the bundle
was built with (``manifest["drift"]["budget"]``). Use it to check a domain's own audio (other speakers,
microphones, languages) against the model a device runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import audio as audio_io
from .build import collect_windows, label_windows
from .bundle import verify
from .drift import DriftResult, evaluate
from .drift_report import drift_json
from .errors import InputError, VerifyError
from .export import Artefact
from .progress import Reporter, silent
from .recipe import DriftConfig
from .runtime.spec import InputSpec

__all__ = ["MIN_WINDOWS", "RecheckResult", "recheck", "reference_entry"]

MIN_WINDOWS = 2
"""Fewest windows CCC is defined on; tens of windows (several speakers) make a meaningful check."""


@dataclass
class RecheckResult:
    """The shipped model of a bundle measured against its float reference on new audio."""

    bundle: Path
    manifest: dict[str, Any]
    drift: DriftResult
    """Rows of the shipped variant only (the float model is the reference)."""
    shipped: str
    """The shipped variant's name (``int8``, ``float16`` ...)."""
    audio: str
    files: int
    teacher: dict[str, str]
    """``name`` and ``identity`` of the teacher that labelled the windows."""

    @property
    def passed(self) -> bool:
        return self.drift.variant_passed(self.shipped)

    @property
    def same_teacher(self) -> bool:
        """Whether the windows were labelled by the teacher the bundle was built with."""
        return self.teacher["identity"] == (self.manifest.get("teacher") or {}).get("identity")

    def to_json(self) -> dict[str, Any]:
        """The drift table and verdict in ``edgeser build --json``'s shape, plus what was checked."""
        report = drift_json(self.drift, target=str(self.manifest["target"]), shipped=self.shipped)
        return {**report, "bundle": str(self.bundle), "audio": {"source": self.audio, "files": self.files},
                "teacher": dict(self.teacher)}


def reference_entry(folder: Path, manifest: dict[str, Any]) -> Path:
    """The float reference model of a verified bundle.

    Raises:
        InputError: the bundle has no reference model (built before bundles kept one).
        VerifyError: the manifest's ``reference`` entry disagrees with its files table.
    """
    entry = manifest.get("reference")
    if entry is None:
        raise InputError("this bundle keeps no float reference model (built by an older edgeser); rebuild it "
                         "to re-check it on new audio", path=folder)
    files = manifest["files"]
    name = entry.get("file") if isinstance(entry, dict) else None
    if not isinstance(name, str) or name not in files or files[name] != entry.get("sha256"):
        raise VerifyError("manifest's reference entry does not name a listed file with its sha256", path=folder)
    return folder / name


def _open_check(path: Path, *, threads: int) -> None:
    """Load a model once, so a missing engine or an unloadable file stops the check before labelling.

    Raises:
        InputError: naming the file (an engine not installed names its pip extra).
    """
    from .runtime.engine import open_model

    try:
        open_model(path, threads=threads)
    except (ImportError, ValueError) as exc:
        raise InputError(str(exc).removeprefix(f"{path}: ") or type(exc).__name__, path=path) from None


def _budget(folder: Path, manifest: dict[str, Any]) -> DriftConfig:
    try:
        budget = manifest["drift"]["budget"]
        return DriftConfig(max_ccc_drop=float(budget["max_ccc_drop"]),
                           min_ccc_vs_float=float(budget["min_ccc_vs_float"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise VerifyError(f"manifest has no usable drift budget ({exc})", path=folder) from None


def recheck(bundle: str | Path, audio: str | Path, *, teacher: str | Path | None = None,
            teacher_output: str | None = None, progress: Reporter = silent) -> RecheckResult:
    """Measure a bundle's shipped model against its float reference on new audio.

    Args:
        bundle: an unpacked bundle folder.
        audio: a folder, list file (csv with file[,speaker], txt) or audio file, read as ``edgeser build
            --audio`` reads it; every file is cut into non-overlapping windows of the bundle's input length.
        teacher: teacher path or ``a+b`` ensemble; default: the embedded reference teacher.
        teacher_output: output of an ONNX teacher to use.
        progress: progress reporter.

    Returns:
        the drift rows of the shipped variant and the verdict against the bundle's own budget (the caller
        decides what a failed verdict means; ``edgeser drift`` exits 3).

    Raises:
        InputError: the bundle is an archive or keeps no reference model; bad audio or teacher; fewer than
            :data:`MIN_WINDOWS` windows; a model's engine is not installed (exit 2).
        VerifyError: the bundle does not match its manifest (exit 6).
    """
    from .teachers import load_teacher

    folder = Path(bundle)
    if folder.is_file():
        raise InputError("is a file: unpack the bundle archive (tar xzf) and pass its folder", path=folder)
    manifest = verify(folder)
    reference = reference_entry(folder, manifest)
    try:
        spec = InputSpec.from_dict(manifest["input"])
    except (KeyError, TypeError, ValueError) as exc:
        raise VerifyError(f"manifest has a corrupt input spec ({exc})", path=folder) from None
    budget, threads = _budget(folder, manifest), int(manifest["runtime"]["threads"])
    shipped = Artefact(str(manifest["model"]["variant"]), folder / manifest["model"]["file"], spec)
    float_art = Artefact("float", reference, spec)
    for art in (float_art, shipped):
        _open_check(art.path, threads=threads)
    source = str(audio)
    wins = collect_windows(audio_io.list_audio(source), spec.window_samples, progress=progress)
    if len(wins.data) < MIN_WINDOWS:
        raise InputError(f"gives {len(wins.data)} window of {spec.window_samples} samples; CCC needs at least "
                         f"{MIN_WINDOWS} (tens make a meaningful check)", path=source)
    teach = load_teacher(teacher, output=teacher_output, threads=threads)
    labels = label_windows(teach, wins.data, progress=progress)
    task = progress.start("measuring drift", 1)
    drift = evaluate(float_art, [shipped], wins.data, labels, budget=budget, threads=threads)
    progress.finish(task)
    return RecheckResult(folder, manifest, drift, shipped.name, source, wins.files,
                         {"name": str(teach.name), "identity": str(teach.identity)})
