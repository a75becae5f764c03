"""``edgeser predict``: A/D/V for audio files with a student checkpoint, a model file or a bundle."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import InputError, OutputError
from ..fileio import check_output, replacing
from ..limits import THREADS
from ..runtime.spec import DIMENSIONS
from ._app import app, console, err_console, handle_errors

CSV_COLUMNS = ("file", "window", "start_s", *DIMENSIONS)
CSV_HELP = f"Write {', '.join(CSV_COLUMNS)} (a row per window plus a 'mean' row per file)."


def _notify(line: str) -> None:
    err_console.print(line, highlight=False, soft_wrap=True)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    try:
        with replacing(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    except OSError as exc:
        raise OutputError(f"cannot write CSV ({exc.strerror})", path=path) from None


@app.command()
@handle_errors
def predict(
    model: Annotated[Path, typer.Argument(help="A bundle folder, a model file (.onnx/.tflite) or a student "
                                          "checkpoint (.safetensors).")],
    files: Annotated[list[Path], typer.Argument(help="Audio files.")],
    csv_out: Annotated[Path | None, typer.Option("--csv", help=CSV_HELP)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --csv file.")] = False,
    threads: Annotated[int, typer.Option(min=THREADS.lo, max=THREADS.hi, help="Inference threads.")] = 1,
) -> None:
    """Predict arousal, dominance and valence for audio files (long files: per window plus the mean)."""
    from ..runners import open_any
    from ..runtime.audiofile import AudioError
    from ..runtime.predict import predict_file

    if csv_out is not None:
        check_output(csv_out, inputs=[model, *files], overwrite=overwrite)
        if not csv_out.parent.is_dir():
            raise OutputError("folder for --csv does not exist", path=csv_out.parent)
    rows: list[dict[str, Any]] = []
    runner, _ = open_any(model, threads=threads, notify=_notify)  # a checkpoint is exported to ONNX once, cached
    console.print(f"{'file':<40} {'arousal':>8} {'dominance':>9} {'valence':>8}", highlight=False)
    for f in files:
        try:
            pred = predict_file(runner, f)  # block by block: memory stays flat on long recordings
        except AudioError as exc:
            raise InputError(exc.reason, path=exc.path) from None
        for i, (start, row) in enumerate(zip(pred.starts_s, pred.windows, strict=True)):
            rows.append(_row(f, str(i), float(start), row))
        a, d, v = pred.mean
        rows.append(_row(f, "mean", None, pred.mean))
        console.print(f"{str(f):<40} {a:8.3f} {d:9.3f} {v:8.3f}", highlight=False)
    if csv_out is not None:
        _write_csv(csv_out, rows)


def _row(f: Path, window: str, start: float | None, v: Any) -> dict[str, Any]:
    return {"file": str(f), "window": window, "start_s": "" if start is None else f"{start:.3f}",
            **{name: f"{float(x):.6f}" for name, x in zip(DIMENSIONS, v, strict=True)}}
