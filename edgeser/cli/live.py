"""``edgeser live``: arousal, dominance and valence from a microphone or a file, as they happen."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgeser.errors import InputError
from edgeser.limits import THREADS
from edgeser.runtime.listen import MAX_DURATION_S
from edgeser.runtime.stream import HOP_MS_RANGE, MAX_SMOOTHING, WINDOW_MS_RANGE

from ._app import app, console, err_console, handle_errors

FILE_CHUNK_MS = 100.0
"""Chunk length when a file is played through the stream, in milliseconds."""
WINDOW_S = (WINDOW_MS_RANGE[0] / 1000.0, WINDOW_MS_RANGE[1] / 1000.0)
"""Range of ``--window-s`` (the stream's window range, in seconds)."""
HOP_S = (HOP_MS_RANGE[0] / 1000.0, HOP_MS_RANGE[1] / 1000.0)
"""Range of ``--hop-s``."""


def _list_devices() -> None:
    from edgeser.runtime.mic import list_devices

    try:
        devices = list_devices()
    except ImportError as exc:
        raise InputError(str(exc)) from None
    if not devices:
        console.print("no audio input devices found; use --input FILE to play a file instead")
        return
    for d in devices:
        console.print(d.describe(), highlight=False)
    console.print("* default input", style="dim")


def _runner(bundle: Path | None, threads: int) -> tuple[Any, str]:
    from edgeser.live import default_runner, open_runner

    if bundle is None:
        return default_runner(threads=threads), "default student"
    if bundle.is_file() and bundle.suffix == ".safetensors":
        return default_runner(threads=threads, student=bundle), bundle.name
    return open_runner(bundle, threads=threads), bundle.name


def _file_source(path: Path, runner: Any, *, fast: bool) -> Any:
    from edgeser.audio import load
    from edgeser.runtime.listen import ArraySource

    rate = int(runner.spec.sampling_rate)
    return ArraySource(load(path, sampling_rate=rate), rate, realtime=not fast, chunk_ms=FILE_CHUNK_MS,
                       name=path.name)


@app.command()
@handle_errors
def live(
    input_file: Annotated[Path | None, typer.Option(
        "--input", "-i", help="Play this audio file through the stream in real time (or --fast)."
    )] = None,
    fast: Annotated[bool, typer.Option("--fast", help="With --input: do not wait for real time.")] = False,
    device: Annotated[str | None, typer.Option("--device", "-d", help="Input device name (or part of it) "
                                               "or index; default: the system's default input.")] = None,
    list_devices: Annotated[bool, typer.Option("--list-devices", help="List input devices, exit.")] = False,
    bundle: Annotated[Path | None, typer.Option("--bundle", "-b", help="A built bundle (any target), a model "
                                                "file, or a student .safetensors; default: the embedded "
                                                "default student.")] = None,
    plain: Annotated[bool, typer.Option("--plain", help="One JSON line per update on stdout.")] = False,
    log: Annotated[Path | None, typer.Option("--log", help="Append every update to this CSV file "
                                             "(flushed per row).")] = None,
    window_s: Annotated[float | None, typer.Option("--window-s", min=WINDOW_S[0], max=WINDOW_S[1],
                                                   help="Window in seconds (default: the model's own).")] = None,
    hop_s: Annotated[float, typer.Option("--hop-s", min=HOP_S[0], max=HOP_S[1], help="Seconds between updates "
                                         "(at most the window).")] = 0.5,
    smoothing: Annotated[float, typer.Option(min=0.0, max=MAX_SMOOTHING, help="Moving-average weight of the "
                                             "previous reading (0: off).")] = 0.0,
    vad: Annotated[bool, typer.Option("--vad/--no-vad", help="Skip windows without voice activity.")] = True,
    duration_s: Annotated[float | None, typer.Option("--duration-s", min=0.0, max=MAX_DURATION_S,
                                                     help="Stop after this many seconds of audio.")] = None,
    threads: Annotated[int, typer.Option(min=THREADS.lo, max=THREADS.hi, help="Inference threads.")] = 1,
) -> None:
    """Stream arousal, dominance and valence live from a microphone or a file (Ctrl-C to stop)."""
    from edgeser.live import LiveOptions, run_live
    from edgeser.runtime.stream import StreamConfig
    from edgeser.runtime.vad import VadConfig

    if list_devices:
        _list_devices()
        return
    if fast and input_file is None:
        raise InputError("--fast needs --input FILE")
    if window_s is not None and hop_s > window_s:
        raise InputError(f"--hop-s ({hop_s:g}) must be at most --window-s ({window_s:g})")
    try:
        config = StreamConfig(window_ms=None if window_s is None else window_s * 1000.0, hop_ms=hop_s * 1000.0,
                              smoothing=smoothing, vad=VadConfig(enabled=vad))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    runner, model_name = _runner(bundle, threads)
    source = _file_source(input_file, runner, fast=fast) if input_file is not None else None
    options = LiveOptions(config=config, plain=plain, log_path=log, duration_s=duration_s, device=device,
                          model_name=model_name)
    summary = run_live(runner, source=source, options=options, console=console)
    (err_console if plain else console).print(summary.line(), highlight=False, soft_wrap=True)
    if summary.stopped == "error":
        logged = f"; the log {log} holds {summary.log_rows} rows" if log is not None else ""
        raise InputError(f"the audio source failed: {summary.error}{logged}")
