"""``edgeser build``: student + teacher + audio -> export -> quantise -> drift gate -> report -> bundle.

Everything is written in a staging folder beside the output and moved into place at the end; a build
that fails its drift gate leaves only the report (and exits 3), never a bundle, and never replaces an
earlier bundle: with ``overwrite`` that report goes to ``<out>.failed``.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import audio as audio_io
from . import selftest
from .bundle import archive, assemble, replace_outputs, staging_dir, write_manifest
from .drift import DriftResult, evaluate
from .drift_report import drift_json, write_machine_reports
from .errors import DriftError, InputError, OutputError
from .export import Artefact, exporter_for
from .fileio import check_output, sha256_file
from .progress import Reporter, silent
from .recipe import Recipe, load_recipe
from .report import BuildFacts, scatter_plots, write_report
from .runtime.engine import InputSpec

__all__ = ["BuildResult", "Windows", "build", "collect_windows", "split_windows", "label_windows"]

TEACHER_BATCH = 16
PLOTS_DIR = "plots"
REFERENCE_DIR = "reference"
"""Bundle folder holding the float model, the reference that ``edgeser drift`` measures the shipped one against."""


@dataclass
class Windows:
    """Audio windows with the group (speaker, or file when speakers are unknown) each comes from."""

    data: np.ndarray
    """(N, T) float32 windows."""
    groups: list[str]
    """Group of each window."""
    split_by: str
    """``speaker`` or ``file``."""
    files: int
    """How many files they came from."""


@dataclass
class BuildResult:
    """What a build produced."""

    out: Path
    archive: Path | None
    report: Path
    drift: DriftResult
    manifest: dict[str, Any] | None
    facts: BuildFacts
    timings_s: dict[str, float] = field(default_factory=dict)


def collect_windows(items: list[audio_io.AudioItem], window_samples: int, *, progress: Reporter = silent) -> Windows:
    """Load every file and cut it into non-overlapping windows (short files padded to one window)."""
    by_speaker = all(it.speaker for it in items)
    chunks, groups = [], []
    task = progress.start("reading audio", len(items))
    for it in items:
        w = audio_io.windows(audio_io.load(it.path), window_samples)
        chunks.append(np.array(w, dtype=np.float32))
        groups += [str(it.speaker) if by_speaker else str(it.path)] * len(w)
        progress.advance(task)
    return Windows(np.concatenate(chunks), groups, "speaker" if by_speaker else "file", len(items))


def split_windows(w: Windows, recipe: Recipe, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices of calibration and evaluation windows: disjoint groups (speakers or files), seeded.

    Raises:
        InputError: fewer than two groups, or fewer windows than the recipe asks for.
    """
    names = sorted(set(w.groups))
    if len(names) < 2:
        raise InputError(f"needs audio from at least two {w.split_by}s to keep calibration and evaluation apart",
                         path=source)
    rng = np.random.default_rng(recipe.data.seed)
    order = [names[i] for i in rng.permutation(len(names))]
    groups = np.array(w.groups)
    held: list[str] = []
    while order and (groups[np.isin(groups, held)].size < recipe.data.evaluation_fraction * len(groups)):
        held.append(order.pop(0))
    if not order:  # keep at least one group for calibration
        order.append(held.pop())
    eval_idx = np.flatnonzero(np.isin(groups, held))
    pool = np.flatnonzero(~np.isin(groups, held))
    need = recipe.data.calibration_windows
    if pool.size < need:
        raise InputError(f"only {pool.size} calibration windows available after holding out {len(held)} "
                         f"{w.split_by}(s) for evaluation; the recipe asks for {need} "
                         f"(data.calibration_windows in {recipe.source})", path=source)
    if eval_idx.size < recipe.data.min_evaluation_windows:
        raise InputError(f"only {eval_idx.size} held-out evaluation windows; the recipe asks for at least "
                         f"{recipe.data.min_evaluation_windows} (data.min_evaluation_windows in {recipe.source})",
                         path=source)
    cal_idx = np.sort(rng.choice(pool, size=need, replace=False))
    return cal_idx, eval_idx


def label_windows(teacher: Any, windows: np.ndarray, *, progress: Reporter = silent,
                  description: str = "labelling with teacher") -> np.ndarray:
    """Teacher labels (N, 3) for (N, T) windows, in batches."""
    out = []
    task = progress.start(description, len(windows))
    for i in range(0, len(windows), TEACHER_BATCH):
        batch = windows[i:i + TEACHER_BATCH]
        out.append(np.asarray(teacher(batch), dtype=np.float32))
        progress.advance(task, len(batch))
    return np.concatenate(out)


def _group_names(w: Windows, idx: np.ndarray) -> list[str]:
    """The speakers (or files, shown by name) that the windows ``idx`` come from, sorted."""
    names = sorted({w.groups[i] for i in idx})
    return names if w.split_by == "speaker" else [Path(n).name for n in names]


def _student_facts(path: Path, model: Any) -> dict[str, Any]:
    from .models import count_parameters

    trainable, frozen = count_parameters(model)
    return {"path": str(path), "arch": model.arch, "config": model.config(), "trainable": trainable,
            "frozen": frozen, "sha256": sha256_file(path)}


def _artefact_facts(arts: list[Artefact]) -> dict[str, dict[str, Any]]:
    return {a.name: {"file": a.path.name, "bytes": a.path.stat().st_size, "sha256": sha256_file(a.path),
                     "details": a.details} for a in arts}


def _manifest(recipe: Recipe, shipped: Artefact, facts: BuildFacts, drift: DriftResult) -> dict[str, Any]:
    from . import __version__

    return {
        "edgeser_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "target": recipe.target,
        "recipe": recipe.to_dict(),
        "model": {"file": f"model{shipped.path.suffix}", "variant": shipped.name,
                  "sha256": facts.artefacts[shipped.name]["sha256"], "bytes": facts.artefacts[shipped.name]["bytes"]},
        "runtime": {"backend": recipe.runtime.backend, "threads": recipe.runtime.threads,
                    "python": recipe.bundle.python},
        "input": shipped.spec.to_dict(),
        "output": {"order": list(shipped.spec.labels), "range": [0.0, 1.0],
                   "note": "trained towards 0..1; values slightly outside are possible"},
        "drift": {**drift.to_dict(), "shipped_variant": shipped.name,
                  "shipped_passed": drift.variant_passed(shipped.name)},
        "student": facts.student,
        "teacher": facts.teacher,
        "data": facts.data,
        "sizes": {name: a["bytes"] for name, a in facts.artefacts.items()},
    }


def _finish_bundle(stage: Path, out: Path, recipe: Recipe, shipped: Artefact, facts: BuildFacts,
                   drift: DriftResult, staged_tar: Path, check: selftest.SelfTestData,
                   reference: Artefact) -> dict[str, Any]:
    assemble(stage, target=recipe.target)
    shutil.copy2(shipped.path, stage / f"model{shipped.path.suffix}")
    ref_file = f"{REFERENCE_DIR}/{reference.path.name}"
    (stage / REFERENCE_DIR).mkdir()
    shutil.copy2(reference.path, stage / ref_file)
    entry = selftest.write(stage, check, sampling_rate=shipped.spec.sampling_rate)
    manifest = write_manifest(stage, {**_manifest(recipe, shipped, facts, drift), "selftest": entry,
                                      "reference": {"file": ref_file, "variant": reference.name,
                                                    "sha256": sha256_file(stage / ref_file)}})
    archive(stage, staged_tar, arcname=out.name)
    return manifest


def build(*, target: str = "rpi", student: str | Path | None = None, teacher: str | Path | None = None,
          audio: str | Path | None = None, out: str | Path | None = None, recipe: str | Path | None = None,
          overrides: dict[str, Any] | None = None, overwrite: bool = False, teacher_output: str | None = None,
          json_out: Path | None = None, junit_out: Path | None = None, progress: Reporter = silent) -> BuildResult:
    """Build a bundle for one target. See docs/build.md for every step.

    Args:
        target: recipe name (``rpi``, ``android``, ``coral``); ignored when ``recipe`` is a file.
        student: student checkpoint (.safetensors); default: the embedded default student.
        teacher: teacher path or ``a+b`` ensemble; default: the embedded reference teacher.
        audio: folder, list file (csv with file[,speaker], txt) or audio file; default: built-in calibration set.
        out: output folder (``<out>.tar.gz`` is written beside it); default ``./edgeser-<target>``.
        recipe: a recipe file overriding ``recipes/<target>.toml``.
        overrides: dotted recipe keys to override (e.g. ``{"quantise.float_ops": []}``).
        overwrite: replace an earlier build's output folder and archive, once the new bundle has passed its
            gate (a failed build leaves them as they were).
        json_out: write the drift table and verdict as JSON here (also when the gate fails).
        junit_out: write the drift gate as JUnit XML here (also when the gate fails).

    Raises:
        InputError: bad student, teacher, audio or recipe (exit 2).
        ExportCheckError: an export disagrees with torch (exit 4).
        DriftError: over the drift budget (exit 3); the report is still written.
        OutputError: the output exists or cannot be written (exit 5).
    """
    from . import models
    from .defaults import calibration_list_path, default_student_path
    from .teachers import load_teacher

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    rec = load_recipe(recipe or target, **(overrides or {}))
    _check_converter(rec)
    out = Path(out or f"edgeser-{rec.target}").resolve()
    _check_output(out, overwrite)
    for extra in (json_out, junit_out):
        if extra is not None:  # replaced freely, like any CI artefact, but never one of the build's inputs
            check_output(extra, inputs=[p for p in (student, teacher, audio, recipe) if p], overwrite=True)
    student_path = Path(student) if student else default_student_path()
    model = models.load(student_path)
    teach = load_teacher(teacher, output=teacher_output, threads=rec.runtime.threads)
    source = str(audio) if audio else str(calibration_list_path())
    items = audio_io.list_audio(source)
    spec = InputSpec(sampling_rate=audio_io.SAMPLING_RATE, window_samples=rec.window_samples())
    wins = collect_windows(items, spec.window_samples, progress=progress)
    cal_idx, eval_idx = split_windows(wins, rec, source)
    labels = label_windows(teacher=teach, windows=wins.data[eval_idx], progress=progress)
    timings["read and label"] = time.perf_counter() - t0
    data = {"source": source, "files": wins.files, "windows": len(wins.data), "window_seconds": rec.data.window_seconds,
            "split_by": wins.split_by, "calibration_windows": len(cal_idx), "evaluation_windows": len(eval_idx),
            "calibration_groups": len({wins.groups[i] for i in cal_idx}),
            "evaluation_groups": len({wins.groups[i] for i in eval_idx}),
            "calibration_names": _group_names(wins, cal_idx), "evaluation_names": _group_names(wins, eval_idx)}
    with staging_dir(out, overwrite=overwrite) as stage:
        work = stage / ".work"
        work.mkdir()
        arts, drift = _export_and_measure(model, rec, spec, wins.data[cal_idx], wins.data[eval_idx], labels,
                                          work, timings, progress)
        facts = BuildFacts(rec.target, rec.to_dict(), _student_facts(student_path, model),
                           {"name": teach.name, "identity": teach.identity}, data, _artefact_facts(arts),
                           rec.bundle.ship, timings)
        shipped = next(a for a in arts if a.name == rec.bundle.ship)
        facts.artefacts[shipped.name]["bundle_file"] = f"model{shipped.path.suffix}"
        check = None
        if drift.variant_passed(rec.bundle.ship):
            t = time.perf_counter()
            check = selftest.prepare(wins.data[eval_idx], labels, teacher=teach, shipped_path=shipped.path,
                                     float_path=next(a.path for a in arts if a.name == "float"),
                                     variant=shipped.name, threads=rec.runtime.threads,
                                     budget={"max_ccc_drop": rec.drift.max_ccc_drop,
                                             "min_ccc_vs_float": rec.drift.min_ccc_vs_float})
            timings["self-test"] = time.perf_counter() - t
        result = _write_outputs(stage, out, rec, arts, shipped, facts, drift, check)
        result.timings_s["total"] = time.perf_counter() - t0
    write_machine_reports(drift_json(drift, target=rec.target, shipped=rec.bundle.ship), json_path=json_out,
                          junit_path=junit_out)
    if not drift.variant_passed(rec.bundle.ship):
        failures = drift.failures(rec.bundle.ship)
        failing = ", ".join(f"{r.variant}/{r.dimension} ({'; '.join(r.reasons)})" for r in failures)
        raise DriftError(f"drift gate failed: {failing}; report: {result.report}", path=None)
    return result


TFLITE_PACKAGES = {"litert_torch": "litert-torch", "ai_edge_quantizer": "ai-edge-quantizer",
                   "ai_edge_litert": "ai-edge-litert"}
"""What a TFLite recipe converts, quantises and measures with (module: package): the ``tflite`` extra."""


def _check_converter(rec: Recipe) -> None:
    """Before any work: a TFLite recipe needs the ``tflite`` extra (one line naming it, exit 2)."""
    import importlib.util

    if rec.export.format != "tflite":
        return
    missing = []
    for module, package in TFLITE_PACKAGES.items():
        try:
            if importlib.util.find_spec(module) is None:
                missing.append(package)
        except ValueError:  # a module entry set to None: not importable
            missing.append(package)
    if missing:
        raise InputError(f"target {rec.target} builds a TFLite model, which needs {', '.join(missing)}: "
                         "pip install 'edgeser[tflite]'")


def _check_output(out: Path, overwrite: bool) -> None:
    """Refuse an existing output unless ``overwrite``; even then, replace only an earlier build's output."""
    tar = out.parent / f"{out.name}.tar.gz"
    for p in (out, tar):
        if p.exists() and not overwrite:
            raise OutputError("output exists already (use --overwrite or another --out)", path=p)
    if out.exists() and not (out.is_dir() and any((out / name).is_file() for name in ("manifest.json", "report.md"))):
        raise OutputError("exists and is not an edgeser build output (no manifest.json or report.md); "
                          "refusing to replace it", path=out)


def _export_and_measure(model: Any, rec: Recipe, spec: InputSpec, cal: np.ndarray, ev: np.ndarray,
                        labels: np.ndarray, work: Path, timings: dict[str, float],
                        progress: Reporter) -> tuple[list[Artefact], DriftResult]:
    exporter = exporter_for(rec.export.format)
    t = time.perf_counter()
    task = progress.start("exporting + quantising", 1 + len(rec.quantise.variants))
    float_art = exporter.export(model, work / f"model.float{_suffix(rec)}", recipe=rec, spec=spec)
    progress.advance(task)
    variants = exporter.quantise(float_art, work, cal, recipe=rec, model=model)
    progress.finish(task)
    timings["export and quantise"] = time.perf_counter() - t
    t = time.perf_counter()
    task = progress.start("measuring drift", 1)
    drift = evaluate(float_art, variants, ev, labels, budget=rec.drift, threads=rec.runtime.threads)
    progress.finish(task)
    timings["drift"] = time.perf_counter() - t
    return [float_art, *variants], drift


def _suffix(rec: Recipe) -> str:
    return ".onnx" if rec.export.format == "onnx" else ".tflite"


def _write_outputs(stage: Path, out: Path, rec: Recipe, arts: list[Artefact], shipped: Artefact, facts: BuildFacts,
                   drift: DriftResult, check: selftest.SelfTestData | None) -> BuildResult:
    """Write the report, and the bundle and archive when the gate passed; move them into place last.

    A previous output is replaced only by a bundle that passed its gate. A failed gate's report goes to
    ``out`` when nothing is there, else to ``<out>.failed`` beside it, so the previous bundle survives.
    """
    plots = [p for a in arts if a.name != "float" for p in scatter_plots(drift, a.name, stage / PLOTS_DIR)]
    write_report(stage / "report.md", facts, drift, plots)
    work = stage.parent / f"{stage.name}.work"
    (stage / ".work").rename(work)  # keep intermediate files out of the bundle
    tar = out.parent / f"{out.name}.tar.gz"
    manifest, staged_tar = None, stage.parent / f"{stage.name}.tar.gz"
    try:
        if check is not None:
            shipped = Artefact(shipped.name, work / shipped.path.name, shipped.spec, shipped.details)
            reference = next(a for a in arts if a.name == "float")
            reference = Artefact(reference.name, work / reference.path.name, reference.spec, reference.details)
            manifest = _finish_bundle(stage, out, rec, shipped, facts, drift, staged_tar, check, reference)
            replace_outputs([(stage, out), (staged_tar, tar)])
        else:
            out = out if not out.exists() else out.with_name(f"{out.name}.failed")
            replace_outputs([(stage, out)])
    finally:
        shutil.rmtree(work, ignore_errors=True)
        staged_tar.unlink(missing_ok=True)
    return BuildResult(out, tar if manifest else None, out / "report.md", drift, manifest, facts,
                       dict(facts.timings_s))
