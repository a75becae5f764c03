"""``edgeser build`` and ``edgeser verify``."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import InputError
from ._app import app, console, err_console, handle_errors

if TYPE_CHECKING:
    from rich.table import Table

    from ..drift import DriftResult

HELP = {
    "target": "Device target: rpi, android or coral (reads recipes/<target>.toml).",
    "student": "Student checkpoint (.safetensors). Default: the embedded default Wav2Small student.",
    "teacher": "Teacher: a .onnx file, an audonnx or transformers folder, or 'a+b' to average several. "
    "Default: the embedded reference teacher.",
    "teacher_output": "Output of an ONNX teacher to use (default: 'logits' or the only output).",
    "audio": "Calibration/evaluation audio: a folder, a .csv with file[,speaker] columns, or a .txt list. "
    "Default: the built-in calibration set.",
    "out": "Output bundle folder; <out>.tar.gz is written beside it. Default: ./edgeser-<target>.",
    "recipe": "A recipe .toml to use instead of the target's.",
    "float_ops": "Comma-separated parts kept in float (frontend, softmax, head); '' quantises everything. "
    "Overrides the recipe.",
    "json": "Also write the drift table and verdict as JSON to this file (written when the gate fails too).",
    "junit": "Also write the drift gate as JUnit XML to this file, one test case per variant, dimension and "
    "condition, for CI systems (written when the gate fails too).",
    "overwrite": "Replace an earlier build's output folder and archive, only once the new bundle has passed "
    "its drift gate.",
}


@app.command()
@handle_errors
def build(
    target: Annotated[str, typer.Option(help=HELP["target"])] = "rpi",
    student: Annotated[Path | None, typer.Option(help=HELP["student"])] = None,
    teacher: Annotated[str | None, typer.Option(help=HELP["teacher"])] = None,
    teacher_output: Annotated[str | None, typer.Option(help=HELP["teacher_output"])] = None,
    audio: Annotated[Path | None, typer.Option(help=HELP["audio"])] = None,
    out: Annotated[Path | None, typer.Option(help=HELP["out"])] = None,
    recipe: Annotated[Path | None, typer.Option(help=HELP["recipe"])] = None,
    float_ops: Annotated[str | None, typer.Option(help=HELP["float_ops"])] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=HELP["overwrite"])] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help=HELP["json"])] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help=HELP["junit"])] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Export, quantise, measure drift against the float model and the teacher, and bundle for a device.

    Exit codes: 0 bundle written; 2 bad input; 3 over the drift budget (report written, no bundle);
    4 export check failed; 5 output exists or cannot be written.
    """
    from ..build import build as run_build
    from ..progress import progress_bars, silent

    overrides: dict[str, object] = {}
    if float_ops is not None:
        overrides["quantise.float_ops"] = [p.strip() for p in float_ops.split(",") if p.strip()]
    run = partial(run_build, target=target, student=student, teacher=teacher, teacher_output=teacher_output,
                  audio=audio, out=out, recipe=recipe, overrides=overrides, overwrite=overwrite, json_out=json_out,
                  junit_out=junit)
    if quiet:
        result = run(progress=silent)
    else:
        with progress_bars(err_console) as bars:
            result = run(progress=bars)
    _summary(result)


def drift_table(drift: DriftResult, *, shipped: str, title: str) -> Table:
    """The console's drift table, one row per variant and dimension (``edgeser build`` and ``edgeser drift``)."""
    from rich.table import Table

    table = Table(title=title, show_lines=False,
                  caption="f: float model, q: quantised variant, T: teacher; drop = |CCC(q,T) - CCC(f,T)|")
    for col in ("variant", "dim", "CCC(f,T)", "CCC(q,T)", "drop", "CCC(q,f)", "ok"):
        table.add_column(col, justify="right" if col.startswith(("CCC", "drop")) else "left")
    for r in drift.rows:
        name = f"{r.variant} (shipped)" if r.variant == shipped else r.variant
        table.add_row(name, r.dimension, f"{r.ccc_float_teacher:.3f}", f"{r.ccc_quant_teacher:.3f}",
                      f"{r.drop:.4f}", f"{r.ccc_quant_float:.4f}", "yes" if r.passed else "[red]NO[/]")
    return table


def _summary(result) -> None:  # type: ignore[no-untyped-def]
    facts = result.facts
    console.print(drift_table(result.drift, shipped=facts.shipped,
                              title=f"drift on {len(result.drift.teacher)} held-out windows from "
                              f"{facts.data['evaluation_groups']} {facts.data['split_by']}"
                              f"{'' if facts.data['evaluation_groups'] == 1 else 's'}"))
    console.print(f"bundle:  {result.out}", soft_wrap=True, highlight=False)
    console.print(f"archive: {result.archive} ({result.archive.stat().st_size / 1024:.1f} KiB)", soft_wrap=True,
                  highlight=False)
    console.print(f"report:  {result.report}", soft_wrap=True, highlight=False)


@app.command()
@handle_errors
def verify(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder or .tar.gz.")],
) -> None:
    """Re-hash every file of a bundle against its manifest; name any changed, missing or added file (exit 6)."""
    from ..bundle import verify as run_verify

    if not bundle.exists():
        raise InputError("bundle not found", path=bundle)
    manifest = run_verify(bundle)
    console.print(f"ok: {bundle}: {len(manifest['files'])} files match manifest.json "
                  f"(target {manifest['target']}, model {manifest['model']['file']} {manifest['model']['variant']})")
