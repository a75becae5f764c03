"""``edgeser live``: stream A/D/V from a microphone or a file, shown as a live terminal view.

The pipeline is the device's own (:func:`edgeser.runtime.listen.listen`); this module adds the model
choice (a bundle, or the embedded default student exported once to a cached ONNX file), file input,
the rich view and the mapping of failures to edgeser errors.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .errors import InputError, OutputError, VerifyError
from .fileio import replacing
from .runtime.engine import InputSpec, Runner
from .runtime.listen import CsvLog, Source, Summary, listen, sigterm_as_interrupt
from .runtime.stream import Reading, StreamConfig

__all__ = ["LiveView", "LiveOptions", "run_live", "open_runner", "default_runner", "cache_dir",
           "student_window_samples",
           "HISTORY_UPDATES", "BAR_WIDTH"]

HISTORY_UPDATES = 30
"""Readings shown in the history sparkline (15 s at a 0.5 s hop)."""
BAR_WIDTH = 20
"""Characters in a full A/D/V bar."""
LEVEL_FLOOR_DBFS = -80.0
"""Left end of the input level meter, in dBFS."""
SPARK = " ▁▂▃▄▅▆▇█"
DIMENSIONS = ("arousal", "dominance", "valence")
EXPORT_RECIPE = "rpi"
"""Recipe whose export settings (opset, parity tolerance, window) turn a student into the live model."""


def cache_dir() -> Path:
    """Cache folder: ``$EDGESER_CACHE``, else ``$XDG_CACHE_HOME/edgeser``, else ``~/.cache/edgeser``."""
    env = os.environ.get("EDGESER_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "edgeser"


def student_window_samples(student: Path, sampling_rate: int = 16_000) -> int:
    """The window a student was trained on (``window_seconds`` in its checkpoint's training facts), else
    the export recipe's window (2 s for ``rpi``), in samples."""
    from .models import read_metadata
    from .recipe import load_recipe

    try:
        facts = json.loads(read_metadata(student).get("extra", "{}"))
        seconds = facts.get("config", {}).get("window_seconds")
    except (json.JSONDecodeError, AttributeError):
        seconds = None
    if isinstance(seconds, int | float) and seconds > 0:
        return int(round(seconds * sampling_rate))
    return load_recipe(EXPORT_RECIPE).window_samples(sampling_rate)


def _export_student(student: Path, dest: Path) -> None:
    """Export a student checkpoint to a float ONNX file at ``dest``, atomically."""
    from .export.onnx import export
    from .models import load
    from .recipe import load_recipe

    with replacing(dest, suffix=".onnx") as tmp:
        export(load(student), tmp, recipe=load_recipe(EXPORT_RECIPE),
               spec=InputSpec(window_samples=student_window_samples(student)))


def default_runner(*, threads: int = 1, student: Path | None = None) -> Runner:
    """A student checkpoint (the embedded default when ``student`` is None) as an ONNX runner, exported
    once and cached by checkpoint hash (``edgeser live`` and ``edgeser predict`` share the cache).

    Raises:
        InputError: the default student is not installed (or ``student`` is missing).
        OutputError: the cache folder cannot be written.
    """
    if student is None:
        from .defaults import default_student_path

        student = default_student_path()
    if not student.is_file():
        raise InputError("student checkpoint not found", path=student)
    from . import __version__

    digest = hashlib.sha256(student.read_bytes() + __version__.encode()).hexdigest()[:16]
    dest = cache_dir() / "live" / f"{student.stem}.{digest}.onnx"
    if not dest.is_file():
        try:
            _export_student(student, dest)
        except OSError as exc:
            raise OutputError(f"cannot write the exported model ({exc.strerror})", path=dest) from None
    return open_runner(dest, threads=threads)


def open_runner(path: Path, *, threads: int = 1) -> Runner:
    """Open a bundle folder or model file with :func:`edgeser.runtime.open_model`, mapping its errors.

    Raises:
        InputError: missing path, an engine that is not installed, or an unloadable model.
        VerifyError: a folder that is not a bundle or does not match its manifest.
    """
    from .runtime.engine import open_model
    from .runtime.integrity import BundleError

    try:
        return open_model(path, threads=threads)
    except BundleError as exc:
        raise VerifyError("; ".join(exc.problems), path=path) from None
    except (FileNotFoundError, ValueError, ImportError, KeyError, json.JSONDecodeError) as exc:
        message = str(exc).removeprefix(f"{path}: ")
        raise InputError(message or type(exc).__name__, path=path) from None


def _spark(values: deque[float | None]) -> str:
    steps = len(SPARK) - 1
    return "".join("·" if v is None else SPARK[1 + min(steps - 1, int(max(0.0, min(1.0, v)) * steps))]
                   for v in values)


def _bar(fraction: float, width: int = BAR_WIDTH) -> str:
    filled = int(round(max(0.0, min(1.0, fraction)) * width))
    return "█" * filled + "░" * (width - filled)


@dataclass
class LiveView:
    """The terminal view: A/D/V bars and history, voice state, input level, latency, losses."""

    source: str
    """Name of the audio source."""
    model: str
    """What model runs (bundle or file name)."""
    history: dict[str, deque[float | None]] = field(
        default_factory=lambda: {d: deque(maxlen=HISTORY_UPDATES) for d in DIMENSIONS})
    """Latest readings per dimension (None for silence)."""
    last: Reading | None = None
    """The latest reading."""
    last_adv: tuple[float, float, float] | None = None
    """The latest reading that had speech."""
    summary: Summary | None = None
    """The running session summary."""

    def update(self, reading: Reading, summary: Summary) -> None:
        self.last, self.summary = reading, summary
        if reading.adv is not None:
            self.last_adv = reading.adv
        for i, name in enumerate(DIMENSIONS):
            self.history[name].append(None if reading.adv is None else reading.adv[i])

    def __rich__(self) -> Any:
        from rich.panel import Panel
        from rich.table import Table

        grid = Table.grid(padding=(0, 2))
        for _ in range(4):
            grid.add_column()
        speech = self.last is not None and self.last.speech
        for i, name in enumerate(DIMENSIONS):
            value = None if self.last_adv is None else self.last_adv[i]
            style = "bold green" if speech else "dim"
            shown = "  -  " if value is None else f"{value:.3f}"
            spark = f"[cyan]{_spark(self.history[name])}[/]"
            grid.add_row(name, f"[{style}]{_bar(value or 0.0)}[/]", shown, spark)
        grid.add_row("", "", "", "")
        level = self.last.level_dbfs if self.last is not None else LEVEL_FLOOR_DBFS
        voice = "[bold green]SPEECH[/]" if speech else "[yellow]silence[/]"
        grid.add_row("voice", voice, "", "")
        grid.add_row("level", _bar((level - LEVEL_FLOOR_DBFS) / -LEVEL_FLOOR_DBFS), f"{level:.0f} dBFS", "")
        source = self.summary.source if self.summary is not None and self.summary.source else self.source
        return Panel(grid, title=f"edgeser live · {source} · {self.model}", subtitle=self._status(),
                     subtitle_align="left")

    def _status(self) -> str:
        s = self.summary
        if s is None:
            return "waiting for audio"
        mean, p99 = s.latency()
        lost = s.dropped_samples + s.overflows
        drop = f"[red]lost {s.dropped_samples} samples, {s.overflows} overflows[/]" if lost else "lost 0"
        return f"{s.audio_s:.1f} s · {s.updates} updates · {mean:.1f} ms (p99 {p99:.1f}) · {drop}"


@dataclass(frozen=True)
class LiveOptions:
    """How a live session runs."""

    config: StreamConfig = field(default_factory=StreamConfig)
    """Window, hop, voice gate and smoothing."""
    plain: bool = False
    """One JSON line per update on stdout instead of the rich view."""
    log_path: Path | None = None
    """CSV log, one row per update, flushed per row."""
    duration_s: float | None = None
    """Stop after this much audio, in seconds."""
    device: str | None = None
    """Input device (name or index) when no source is given."""
    model_name: str = "default"
    """Shown in the view."""


def _check_log(path: Path | None) -> None:
    if path is None:
        return
    try:
        CsvLog(path).close()
    except (ValueError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).removeprefix(f"{path}: ")
        raise OutputError(f"cannot write the log ({reason})", path=path) from None


def run_live(runner: Runner, *, source: Source | None, options: LiveOptions, console: Any = None,
             out: TextIO | None = None) -> Summary:
    """Run one session: rich view (or JSON lines), CSV log, device errors mapped to edgeser errors.

    SIGTERM ends the session like Ctrl-C (in the main thread): the summary says ``interrupted``.

    Args:
        runner: an open model.
        source: audio source; None opens the input device ``options.device``.
        options: session settings.
        console: rich console for the view (default: stdout).
        out: stream for ``--plain`` JSON lines (default: stdout).

    Raises:
        InputError: no such device (the message lists devices and suggests --input), sounddevice is
            missing, invalid stream settings, or the device failed mid-stream (after the summary).
        OutputError: the log cannot be written.
    """
    from .runtime.mic import NoDeviceError

    _check_log(options.log_path)
    kwargs: dict[str, Any] = {"source": source, "device": options.device, "config": options.config,
                              "log_path": options.log_path, "duration_s": options.duration_s}
    try:
        with sigterm_as_interrupt():
            if options.plain:
                return listen(runner, out=out or sys.stdout, **kwargs)
            return _rich_session(runner, source=source, options=options, console=console, kwargs=kwargs)
    except NoDeviceError as exc:
        raise InputError(str(exc)) from None
    except ImportError as exc:
        raise InputError(f"{exc}; or use --input FILE") from None
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _rich_session(runner: Runner, *, source: Source | None, options: LiveOptions, console: Any,
                  kwargs: dict[str, Any]) -> Summary:
    from rich.console import Console
    from rich.live import Live

    console = console or Console()
    view = LiveView(source=source.name if source is not None else str(options.device or "default input"),
                    model=options.model_name)
    with Live(view, console=console, auto_refresh=False, transient=False) as live:
        def show(reading: Reading, summary: Summary) -> None:
            view.update(reading, summary)
            live.refresh()

        summary = listen(runner, on_reading=show, **kwargs)
        view.summary = summary
        live.refresh()
    if not console.is_terminal:  # rich leaves the last frame of a non-terminal Live without a newline
        console.line()
    return summary
