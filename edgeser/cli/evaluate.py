"""``edgeser evaluate``: how well a model agrees with a teacher, and with human ratings, on your audio."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import OutputError
from ..limits import THREADS
from ._app import app, console, err_console, handle_errors
from .build import HELP as BUILD_HELP

if TYPE_CHECKING:
    from rich.table import Table

    from ..evaluate_report import TextTable

HELP = {
    "model": "A bundle folder or .tar.gz, a model file (.onnx/.tflite) or a student checkpoint "
    "(.safetensors). Default: the embedded default student.",
    "audio": "Audio: a folder, a .csv with file[,speaker] columns (plus emotion, or arousal, dominance and "
    "valence ratings on 0..1, for accuracy) or a .txt list; cut into windows of the model's input length "
    "and labelled by --teacher. With --labels: a .csv whose human ratings or emotions to score against. "
    "Default: the built-in calibration set.",
    "labels": "A labels CSV from `edgeser label`: score on its windows against its teacher labels, without "
    "running a teacher.",
    "json": "Also write every figure as JSON to this file.",
    "report": "Also write a report folder: report.md, evaluation.json and a scatter plot per dimension.",
    "overwrite": "Replace an existing --report folder (one written by this command).",
}


@app.command()
@handle_errors
def evaluate(
    model: Annotated[Path | None, typer.Option(help=HELP["model"])] = None,
    audio: Annotated[Path | None, typer.Option(help=HELP["audio"])] = None,
    labels: Annotated[Path | None, typer.Option(help=HELP["labels"])] = None,
    teacher: Annotated[str | None, typer.Option(help=BUILD_HELP["teacher"])] = None,
    teacher_output: Annotated[str | None, typer.Option(help=BUILD_HELP["teacher_output"])] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help=HELP["json"])] = None,
    report: Annotated[Path | None, typer.Option(help=HELP["report"])] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=HELP["overwrite"])] = False,
    threads: Annotated[int, typer.Option(min=THREADS.lo, max=THREADS.hi, help="Inference threads.")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Measure a model on your audio: agreement with a teacher, and accuracy against human ratings.

    Reports CCC, Pearson and the mean offset per dimension, pooled and per speaker. Run it on audio from
    the domain a model will meet before deploying it there.

    Exit codes: 0 measured; 2 bad input; 5 an output exists or cannot be written; 6 a bundle does not
    match its manifest.
    """
    from ..evaluate import evaluate as run_evaluate
    from ..evaluate_report import check_report_folder, summary, tables, write_report
    from ..fileio import check_output, replacing
    from ..progress import reporting

    inputs = [p for p in (model, audio, labels) if p is not None]
    if json_out is not None:  # replaced freely, like any CI artefact, but never one of the inputs
        check_output(json_out, inputs=inputs, overwrite=True)
    if report is not None:
        check_output(report, inputs=inputs, overwrite=True)
        check_report_folder(report, overwrite=overwrite)
    with reporting(not quiet, err_console) as progress:
        result = run_evaluate(model, audio=audio, labels=labels, teacher=teacher, teacher_output=teacher_output,
                              threads=threads, progress=progress, notify=_notify)
    console.print(summary(result), soft_wrap=True, highlight=False)
    for t in tables(result):
        console.print(_rich(t))
    if json_out is not None:
        try:
            with replacing(json_out) as tmp:
                tmp.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write JSON ({exc.strerror})", path=json_out) from None
    if report is not None:
        console.print(f"report: {write_report(result, report, overwrite=overwrite)}", soft_wrap=True,
                      highlight=False)


def _notify(line: str) -> None:
    err_console.print(line, highlight=False, soft_wrap=True)


def _rich(t: TextTable) -> Table:
    from rich.table import Table

    table = Table(title=t.title, caption=t.note)
    for i, col in enumerate(t.columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in t.rows:
        table.add_row(*row)
    return table
