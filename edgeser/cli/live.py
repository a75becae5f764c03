"""``edgeser live``: arousal, dominance and valence from a microphone or a file, as they happen."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeser.errors import InputError
from edgeser.limits import THREADS
from edgeser.live import (
    DEFAULT_HOP_S,
    HOP_S_RANGE,
    MAX_DURATION_S,
    MAX_SMOOTHING,
    WINDOW_S_RANGE,
    LiveSettings,
    open_session,
)

from ._app import app, console, err_console, handle_errors


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
    window_s: Annotated[float | None, typer.Option("--window-s", min=WINDOW_S_RANGE[0], max=WINDOW_S_RANGE[1],
                                                   help="Window in seconds (default: the model's own).")] = None,
    hop_s: Annotated[float, typer.Option("--hop-s", min=HOP_S_RANGE[0], max=HOP_S_RANGE[1],
                                         help="Seconds between updates (at most the window).")] = DEFAULT_HOP_S,
    smoothing: Annotated[float, typer.Option(min=0.0, max=MAX_SMOOTHING, help="Moving-average weight of the "
                                             "previous reading (0: off).")] = 0.0,
    vad: Annotated[bool, typer.Option("--vad/--no-vad", help="Skip windows without voice activity.")] = True,
    duration_s: Annotated[float | None, typer.Option("--duration-s", min=0.0, max=MAX_DURATION_S,
                                                     help="Stop after this many seconds of audio.")] = None,
    threads: Annotated[int, typer.Option(min=THREADS.lo, max=THREADS.hi, help="Inference threads.")] = 1,
    web: Annotated[bool, typer.Option("--web", help="Show it on a page in the browser; its audio is the page's "
                                      "microphone, or --input FILE / --device.")] = False,
    host: Annotated[str | None, typer.Option("--host", help="With --web: interface to serve on (default "
                                             "127.0.0.1; any other needs the token printed in the URL).")] = None,
    port: Annotated[int | None, typer.Option("--port", min=0, max=65535, help="With --web: TCP port "
                                             "(default 8765).")] = None,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="With --web: do not open a browser.")] = False,
) -> None:
    """Stream arousal, dominance and valence live from a microphone or a file (Ctrl-C to stop)."""
    if list_devices:
        _list_devices()
        return
    settings = LiveSettings(input_file=input_file, fast=fast, device=device, window_s=window_s, hop_s=hop_s,
                            smoothing=smoothing, vad=vad, plain=plain, log_path=log, duration_s=duration_s,
                            threads=threads)
    if not web and (host is not None or port is not None):
        raise InputError("--host and --port need --web")
    session = open_session(bundle, settings, notify=_notify)
    if web:
        from edgeser.web import run_web

        summary = run_web(session, host=host or "127.0.0.1", port=8765 if port is None else port,
                          browser=not no_browser, notify=_notify)
        if summary is None:
            return
    else:
        summary = session.run(console=console)
    (err_console if plain else console).print(summary.line(), highlight=False, soft_wrap=True)
    if summary.stopped == "error":
        logged = f"; the log {log} holds {summary.log_rows} rows" if log is not None else ""
        raise InputError(f"the audio source failed: {summary.error}{logged}")


def _notify(line: str) -> None:
    err_console.print(line, highlight=False, soft_wrap=True)
