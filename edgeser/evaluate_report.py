"""What ``edgeser evaluate`` shows: its tables (for the console and the markdown report) and its report folder.

The report folder holds ``report.md``, ``evaluation.json`` and one scatter plot per dimension; it is written
in a temporary folder beside its destination and renamed into place when complete.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import OutputError
from .evaluate import Agreement, Evaluation
from .metrics import DIMENSIONS
from .plots import Panel, save_scatter

__all__ = ["REPORT_FILES", "TextTable", "check_report_folder", "tables", "summary", "write_report", "scatter_plots"]

REPORT_MD, REPORT_JSON, PLOT_PREFIX = "report.md", "evaluation.json", "scatter_"
REPORT_FILES = (REPORT_MD, REPORT_JSON, *(f"{PLOT_PREFIX}{dim}.png" for dim in DIMENSIONS))
"""Every file a report folder holds; ``--overwrite`` replaces only a folder holding nothing else."""
HUMAN_KINDS = {"categories": "the A/D/V of each clip's emotion category (NRC VAD lexicon)",
               "ratings": "the human A/D/V ratings in the audio list"}


@dataclass
class TextTable:
    """A table as text cells: rendered by rich on the console and as markdown in the report."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""


def _row(label: str, values: tuple[float, ...], windows: int, *, signed: bool = False) -> list[str]:
    return [label, str(windows), *(f"{v:+.3f}" if signed else f"{v:.3f}" for v in values)]


def _metric_rows(a: Agreement, who: str, reference: str) -> list[list[str]]:
    suffix = f", {who}" if who else ""
    return [_row(f"CCC{suffix}", a.ccc, a.windows), _row(f"Pearson{suffix}", a.pearson, a.windows),
            _row(f"offset{suffix} ({who or 'model'} - {reference})", a.offset, a.windows, signed=True)]


def tables(ev: Evaluation) -> list[TextTable]:
    """Accuracy against human-derived targets (when known) first, then agreement with the teacher."""
    columns = ["", "windows", *DIMENSIONS]
    out = []
    human = ev.vs_human("model")
    teacher_human = ev.vs_human("teacher")
    if human is not None and teacher_human is not None and ev.human is not None:
        t = TextTable("Accuracy against human-derived targets", columns,
                      note=f"targets: {HUMAN_KINDS[ev.human.kind]}; 1 is perfect, 0 no agreement")
        t.rows.append(_row("CCC, model", human[0].ccc, human[0].windows))
        t.rows.append(_row("CCC, teacher", teacher_human[0].ccc, teacher_human[0].windows))
        t.rows += _metric_rows(human[0], "model", "target")[1:]
        t.rows += [_row(f"CCC, model, speaker {s}", a.ccc, a.windows) for s, a in human[1].items()]
        out.append(t)
    pooled, speakers = ev.vs_teacher()
    t = TextTable("Agreement with the teacher", columns, note=f"teacher: {ev.teacher['name']}")
    t.rows += _metric_rows(pooled, "", "teacher")
    t.rows += [_row(f"CCC, speaker {s}", a.ccc, a.windows) for s, a in speakers.items()]
    out.append(t)
    return out


def summary(ev: Evaluation) -> str:
    """One line: what was measured on how much audio."""
    speakers = sorted(set(ev.speakers)) if ev.speakers else []
    who = f", speakers {', '.join(speakers)}" if speakers else ", speakers unknown"
    return (f"{ev.model} on {ev.windows} windows of {ev.window_seconds:g} s from {ev.files} "
            f"file{'' if ev.files == 1 else 's'}{who} ({ev.source})")


def _markdown(t: TextTable) -> str:
    lines = [f"## {t.title}", "", "| " + " | ".join(t.columns) + " |",
             "|---|" + "---:|" * (len(t.columns) - 1)]
    lines += ["| " + " | ".join(r) + " |" for r in t.rows]
    return "\n".join([*lines, "", t.note, ""])


def scatter_plots(ev: Evaluation, folder: Path) -> list[Path]:
    """One PNG per dimension: the model against the teacher and, when known, against the human targets."""
    pooled, _ = ev.vs_teacher()
    human = ev.vs_human("model")
    references: list[tuple[str, np.ndarray, Agreement]] = [("teacher", ev.teacher_labels, pooled)]
    if human is not None and ev.human is not None:
        references.append((f"human-derived target ({ev.human.kind})", ev.human.values, human[0]))
    return [save_scatter(folder / f"{PLOT_PREFIX}{dim}.png",
                         [Panel(ref[:, d], ev.predictions[:, d], name, "model", f"{dim}: CCC = {a.ccc[d]:.3f}")
                          for name, ref, a in references])
            for d, dim in enumerate(DIMENSIONS)]


def check_report_folder(out: Path, *, overwrite: bool = False) -> None:
    """Refuse a report folder that exists (without ``overwrite``) or that holds more than a report.

    Raises:
        OutputError: naming ``out`` (exit 5).
    """
    if not (out.exists() or out.is_symlink()):
        return
    if not overwrite:
        raise OutputError("exists already (use --overwrite or another report folder)", path=out)
    if not out.is_dir() or out.is_symlink() or not (out / REPORT_MD).is_file() or \
            any(p.name not in REPORT_FILES for p in out.iterdir()):
        raise OutputError("exists and is not an edgeser evaluate report (it holds other files); refusing to "
                          "replace it", path=out)


def write_report(ev: Evaluation, out: Path, *, overwrite: bool = False) -> Path:
    """Write ``report.md``, ``evaluation.json`` and the scatter plots to the folder ``out``, atomically.

    Raises:
        OutputError: ``out`` exists (without ``overwrite``, or holding files a report does not), or cannot be
            written; nothing is left half-written.
    """
    from . import __version__
    from .bundle import replace_outputs, staging_dir

    out = Path(out)
    check_report_folder(out, overwrite=overwrite)
    with staging_dir(out, overwrite=True) as stage:
        try:
            plots = scatter_plots(ev, stage)
            text = [f"# Evaluation of {ev.model}", "", summary(ev) + ".", "",
                    f"Teacher: {ev.teacher['name']} (identity {ev.teacher['identity']}). Measured "
                    f"{time.strftime('%Y-%m-%d')} with edgeser {__version__}; CCC: concordance correlation "
                    "coefficient; offset: mean difference.", ""]
            text += [_markdown(t) for t in tables(ev)]
            text += ["## Scatter plots", "", *(f"![{p.stem}]({p.name})" for p in plots), ""]
            (stage / REPORT_MD).write_text("\n".join(text), encoding="utf-8")
            (stage / REPORT_JSON).write_text(json.dumps(ev.to_json(), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write the report ({exc.strerror})", path=out) from None
        replace_outputs([(stage, out)])
    return out
