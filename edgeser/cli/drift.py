"""``edgeser drift``: re-check a built bundle's shipped model on new audio, without rebuilding."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import DriftError, InputError
from ._app import app, console, err_console, handle_errors
from .build import HELP as BUILD_HELP
from .build import drift_table

HELP = {
    "bundle": "Bundle folder (unpack a .tar.gz first).",
    "audio": "Audio to check on: a folder, a .csv with file[,speaker] columns, a .txt list or one file; cut "
    "into windows of the bundle's input length.",
    "json": "Also write the drift table and verdict as JSON to this file (written when the check fails too).",
    "junit": "Also write the check as JUnit XML to this file, one test case per dimension and condition "
    "(written when the check fails too).",
}


@app.command()
@handle_errors
def drift(
    bundle: Annotated[Path, typer.Argument(help=HELP["bundle"])],
    audio: Annotated[Path, typer.Option(help=HELP["audio"])],
    teacher: Annotated[str | None, typer.Option(help=BUILD_HELP["teacher"])] = None,
    teacher_output: Annotated[str | None, typer.Option(help=BUILD_HELP["teacher_output"])] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help=HELP["json"])] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help=HELP["junit"])] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Measure a bundle's shipped model against its float reference on new audio, with the bundle's budget.

    Exit codes: 0 within budget; 2 bad input (audio, teacher, a bundle without a reference model);
    3 over the drift budget; 5 a report file cannot be written; 6 the bundle does not match its manifest.
    """
    from ..drift_report import write_machine_reports
    from ..fileio import check_output
    from ..progress import reporting
    from ..recheck import recheck

    if not bundle.exists():
        raise InputError("bundle not found", path=bundle)
    for extra in (json_out, junit):
        if extra is not None:  # replaced freely, like any CI artefact, but never one of the inputs
            check_output(extra, inputs=[p for p in (bundle, audio, teacher) if p], overwrite=True)
    with reporting(not quiet, err_console) as progress:
        result = recheck(bundle, audio, teacher=teacher, teacher_output=teacher_output, progress=progress)
    windows = len(result.drift.teacher)
    console.print(drift_table(result.drift, shipped=result.shipped,
                              title=f"drift on {windows} windows from {result.files} "
                              f"file{'' if result.files == 1 else 's'}: shipped model vs its float reference"))
    if not result.same_teacher:
        console.print(f"labelled by teacher {result.teacher['name']}, not the one the bundle was built with "
                      f"({result.manifest.get('teacher', {}).get('name', 'unknown')})", soft_wrap=True,
                      highlight=False)
    write_machine_reports(result.to_json(), json_path=json_out, junit_path=junit)
    budget = result.drift.budget
    if not result.passed:
        failing = "; ".join(f"{r.dimension}: {', '.join(r.reasons)}" for r in result.drift.failures(result.shipped))
        raise DriftError(f"over the bundle's drift budget on this audio: {failing}", path=bundle)
    console.print(f"passed: {result.shipped} stays within the bundle's budget (drop <= {budget.max_ccc_drop:g}, "
                  f"CCC(q,f) >= {budget.min_ccc_vs_float:g}) on {windows} windows", soft_wrap=True, highlight=False)
