"""``edgeser predict``: A/D/V, with words, for audio files, folders, list files or stdin, with any model.

The model is ``--model`` (a bundle folder or ``.tar.gz``, an ``.onnx``/``.tflite`` file, a student
checkpoint) or, left out, the embedded default student. A model given where the audio goes is refused with
a one-line hint (``--model``). Output: a table on a terminal (plain aligned lines, one per file as it
finishes, when stdout is a pipe or a file); ``--json`` for JSON lines (the bundle runner's fields plus the
words); ``--csv`` for the per-window CSV. A file that cannot be read is reported on stderr and skipped, and
the command exits 2 at the end; ``--strict`` stops at the first one.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from ..errors import EdgeserError, InputError, OutputError
from ..fileio import check_output, replacing
from ..limits import THREADS
from ..runtime.spec import DIMENSIONS
from ._app import app, console, err_console, handle_errors
from .predict_output import Output, open_output

if TYPE_CHECKING:
    from ..api import Model, Result

CSV_COLUMNS = ("file", "window", "start_s", *DIMENSIONS)
CSV_HELP = f"Write {', '.join(CSV_COLUMNS)} (a row per window plus a 'mean' row per file)."
STDIN = "-"
"""The input that means: WAV/FLAC/OGG bytes on standard input."""
STDIN_NAME = "<stdin>"
"""How audio read from stdin is named in the output and in messages."""
MAX_STDIN_BYTES = 256 * 1024 * 1024
"""Most bytes read from stdin (held in memory; about 70 minutes of 16-bit stereo at 32 kHz)."""
MODEL_SUFFIXES = (".onnx", ".tflite", ".safetensors", ".tar.gz")
"""Names that are models, not audio: given among the inputs, they get a hint to use ``--model``."""


@dataclass(frozen=True)
class Item:
    """One input to predict: an audio file, stdin, or a source that failed to resolve (``error``)."""

    name: str
    """Shown in the output and in messages."""
    path: Path | None = None
    """The audio file (None for stdin and for failed sources)."""
    error: EdgeserError | None = None
    """Why a folder or list file named no audio."""


def _notify(line: str) -> None:
    err_console.print(line, highlight=False, soft_wrap=True)


def _report(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    try:
        with replacing(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    except OSError as exc:
        raise OutputError(f"cannot write CSV ({exc.strerror})", path=path) from None


def _csv_rows(name: str, result: Result) -> list[dict[str, Any]]:
    def row(window: str, start: float | None, values: Any) -> dict[str, Any]:
        return {"file": name, "window": window, "start_s": "" if start is None else f"{start:.3f}",
                **{d: f"{float(x):.6f}" for d, x in zip(DIMENSIONS, values, strict=True)}}

    rows = [row(str(i), float(s), w) for i, (s, w) in enumerate(zip(result.starts_s, result.per_window,
                                                                        strict=True))]
    return [*rows, row("mean", None, result.adv)]


def _is_model(path: Path) -> bool:
    """A model file or a bundle (folder or archive): what ``--model`` takes, never audio."""
    if path.name.lower().endswith(MODEL_SUFFIXES):
        return True
    return path.is_dir() and (path / "manifest.json").is_file()


def _check_inputs(inputs: list[Path]) -> None:
    """Refuse no input, a model among the inputs, and stdin twice, before any work starts."""
    if not inputs:
        raise InputError("give audio files, folders, list files (.csv, .txt) or - for stdin")
    for path in inputs:
        if str(path) != STDIN and _is_model(path):
            raise InputError(f"this is a model, not audio: pass it as --model {path} (edgeser predict "
                             "--model MODEL FILE...)", path=path)
    if sum(str(p) == STDIN for p in inputs) > 1:
        raise InputError("stdin (-) can be read only once")


def _items(inputs: list[Path]) -> Iterator[Item]:
    """Each audio file the inputs name, in order: folders searched recursively, list files read."""
    from ..audio import list_audio

    for path in inputs:
        if str(path) == STDIN:
            yield Item(STDIN_NAME)
        elif path.is_dir() or path.suffix.lower() in (".csv", ".txt"):
            try:
                found = list_audio(path)
            except InputError as exc:
                yield Item(str(path), error=exc)
                continue
            yield from (Item(str(a.path), a.path) for a in found)
        else:
            yield Item(str(path), path)


def _read_stdin() -> bytes:
    """The bytes on stdin, at most :data:`MAX_STDIN_BYTES`.

    Raises:
        InputError: stdin is a terminal, or holds more than the cap.
    """
    stream = typer.get_binary_stream("stdin")
    if stream.isatty():
        raise InputError("stdin is a terminal: pipe audio into it (edgeser predict - < speech.wav)", path=STDIN_NAME)
    data = stream.read(MAX_STDIN_BYTES + 1)
    if len(data) > MAX_STDIN_BYTES:
        raise InputError(f"more than {MAX_STDIN_BYTES >> 20} MiB on stdin: save the audio to a file and pass the "
                         "file", path=STDIN_NAME)
    return bytes(data)


def _predict(model: Model, item: Item) -> Result:
    """Predict one item.

    Raises:
        InputError: the item cannot be read (see :mod:`edgeser.runtime.audiofile`).
    """
    if item.error is not None:
        raise item.error
    if item.path is None:
        return model.predict_bytes(_read_stdin(), name=STDIN_NAME)
    return model.predict_file(item.path)


def _run(model: Model, inputs: list[Path], out: Output, *, strict: bool, csv_rows: list[dict[str, Any]] | None) -> int:
    """Predict every item; returns how many were skipped.

    Raises:
        InputError: with ``strict``, the first item that cannot be read.
    """
    bad = total = 0
    for item in _items(inputs):
        total += 1
        try:
            result = _predict(model, item)
        except InputError as exc:
            if strict:
                out.close()
                raise
            bad += 1
            _report(exc.message)
            continue
        out.add(item.name, result)
        if csv_rows is not None:
            csv_rows.extend(_csv_rows(item.name, result))
    out.close()
    if bad:
        _report(f"{bad} of {total} inputs could not be read and were skipped (see above)")
    return bad


@app.command()
@handle_errors
def predict(
    inputs: Annotated[list[Path] | None, typer.Argument(
        help="Audio files, folders (searched recursively), list files (.csv with a 'file' column, .txt with a "
             "path per line) or - for WAV/FLAC bytes on stdin.", metavar="AUDIO", show_default=False)] = None,
    model: Annotated[Path | None, typer.Option(
        "--model", "-m", help="A bundle folder or .tar.gz, a model file (.onnx/.tflite) or a student checkpoint "
                              "(.safetensors). Default: the embedded default student.", show_default=False)] = None,
    json_lines: Annotated[bool, typer.Option("--json", help="One JSON object per file (file, arousal, dominance, "
                                                            "valence, windows, bands) instead of the table.")] = False,
    per_window: Annotated[bool, typer.Option("--per-window", help="Also show each window of long files.")] = False,
    csv_out: Annotated[Path | None, typer.Option("--csv", help=CSV_HELP)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --csv file.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first input that cannot be read (default: "
                                                          "report it, go on, exit 2 at the end).")] = False,
    threads: Annotated[int, typer.Option(min=THREADS.lo, max=THREADS.hi, help="Inference threads.")] = 1,
) -> None:
    """Predict arousal, dominance and valence, with words, for audio (long files: per window plus the mean)."""
    from ..api import load

    paths = list(inputs or [])
    _check_inputs(paths)
    if csv_out is not None:
        check_output(csv_out, inputs=[p for p in (model, *paths) if p is not None and str(p) != STDIN],
                     overwrite=overwrite)
        if not csv_out.parent.is_dir():
            raise OutputError("folder for --csv does not exist", path=csv_out.parent)
    rows: list[dict[str, Any]] | None = [] if csv_out is not None else None
    with load(model, threads=threads, notify=_notify) as opened:  # a checkpoint is exported to ONNX once, cached
        out = open_output(console, opened, json_lines=json_lines, per_window=per_window)
        bad = _run(opened, paths, out, strict=strict, csv_rows=rows)
    if csv_out is not None and rows is not None:
        _write_csv(csv_out, rows)
    if bad:
        raise typer.Exit(code=InputError.exit_code)

