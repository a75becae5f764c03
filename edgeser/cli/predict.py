"""``edgeser predict``: A/D/V for audio files with a student checkpoint, a model file or a bundle."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import InputError, OutputError
from ..fileio import check_output, replacing
from ..limits import THREADS
from ._app import app, console, handle_errors

CSV_COLUMNS = ("file", "window", "start_s", "arousal", "dominance", "valence")
CSV_HELP = "Write file, window, start_s, arousal, dominance, valence (a row per window plus a 'mean' row per file)."


def _open(model: Path, threads: int) -> Any:
    """A Runner for a bundle, an .onnx/.tflite file, or a student .safetensors (exported to ONNX once and
    cached, like ``edgeser live`` does: :func:`edgeser.live.default_runner`)."""
    from ..live import default_runner, open_runner

    if not model.exists():
        raise InputError("model not found", path=model)
    if model.is_file() and model.suffix == ".safetensors":
        return default_runner(threads=threads, student=model)
    return open_runner(model, threads=threads)


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
    from ..runtime.audiofile import AudioError
    from ..runtime.predict import predict_file

    if csv_out is not None:
        check_output(csv_out, inputs=[model, *files], overwrite=overwrite)
        if not csv_out.parent.is_dir():
            raise OutputError("folder for --csv does not exist", path=csv_out.parent)
    rows: list[dict[str, Any]] = []
    runner = _open(model, threads)
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
            "arousal": f"{float(v[0]):.6f}", "dominance": f"{float(v[1]):.6f}", "valence": f"{float(v[2]):.6f}"}
