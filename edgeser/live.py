"""``edgeser live``: stream A/D/V from a microphone or a file, shown as a live terminal view.

The pipeline is the device's own (:func:`edgeser.runtime.listen.listen`); this module builds a session
from plain options (:class:`LiveSettings`: the model, a file or a device, window, hop, smoothing, voice
gate), opens the model through :mod:`edgeser.runners`, plays files through the one audio reader, and adds
the rich view and the mapping of failures to edgeser errors.
"""

from __future__ import annotations

import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .errors import InputError, OutputError
from .runtime.bands import load_bands
from .runtime.listen import MAX_DURATION_S, CsvLog, Source, Summary, listen, sigterm_as_interrupt
from .runtime.spec import DIMENSIONS, Runner
from .runtime.stream import DEFAULT_HOP_MS, HOP_MS_RANGE, MAX_SMOOTHING, WINDOW_MS_RANGE, Reading, StreamConfig

__all__ = ["LiveView", "LiveOptions", "LiveSettings", "LiveSession", "open_session", "run_live",
           "HISTORY_UPDATES", "BAR_WIDTH", "FILE_CHUNK_MS", "WINDOW_S_RANGE", "HOP_S_RANGE", "DEFAULT_HOP_S",
           "MAX_SMOOTHING", "MAX_DURATION_S"]

HISTORY_UPDATES = 30
"""Readings shown in the history sparkline (15 s at a 0.5 s hop)."""
BAR_WIDTH = 20
"""Characters in a full A/D/V bar."""
LEVEL_FLOOR_DBFS = -80.0
"""Left end of the input level meter, in dBFS."""
SPARK = " ▁▂▃▄▅▆▇█"
FILE_CHUNK_MS = 100.0
"""Chunk length when a file is played through the stream, in milliseconds."""
WINDOW_S_RANGE = (WINDOW_MS_RANGE[0] / 1000.0, WINDOW_MS_RANGE[1] / 1000.0)
"""Smallest and largest window, in seconds (the stream's own range)."""
HOP_S_RANGE = (HOP_MS_RANGE[0] / 1000.0, HOP_MS_RANGE[1] / 1000.0)
"""Smallest and largest hop, in seconds."""
DEFAULT_HOP_S = DEFAULT_HOP_MS / 1000.0
"""Seconds between updates unless asked otherwise."""


def _spark(values: deque[float | None]) -> str:
    steps = len(SPARK) - 1
    return "".join("·" if v is None else SPARK[1 + min(steps - 1, int(max(0.0, min(1.0, v)) * steps))]
                   for v in values)


def _bar(fraction: float, width: int = BAR_WIDTH) -> str:
    filled = int(round(max(0.0, min(1.0, fraction)) * width))
    return "█" * filled + "░" * (width - filled)


@dataclass
class LiveView:
    """The terminal view: A/D/V bars, values and their words (docs/outputs.md), history, voice state, input
    level, latency, losses."""

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

        bands = load_bands()
        grid = Table.grid(padding=(0, 2))
        for _ in range(4):
            grid.add_column()
        speech = self.last is not None and self.last.speech
        for i, name in enumerate(DIMENSIONS):
            value = None if self.last_adv is None else self.last_adv[i]
            style = "bold green" if speech else "dim"
            shown = "  -  " if value is None else f"{value:.3f} {bands.word(name, value)}"
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


@dataclass(frozen=True)
class LiveSettings:
    """What a user asks of a live session, as plain values (the options of ``edgeser live``)."""

    input_file: Path | None = None
    """Play this audio file through the stream; None listens to ``device``."""
    fast: bool = False
    """With ``input_file``: do not wait for real time."""
    device: str | None = None
    """Input device (name, part of a name, or index); None for the system's default input."""
    window_s: float | None = None
    """Window in seconds; None takes the model's own."""
    hop_s: float = DEFAULT_HOP_S
    """Seconds between updates (at most the window)."""
    smoothing: float = 0.0
    """Moving-average weight of the previous reading (0: off)."""
    vad: bool = True
    """Skip windows without voice activity."""
    plain: bool = False
    """One JSON line per update on stdout instead of the rich view."""
    log_path: Path | None = None
    """CSV log, one row per update."""
    duration_s: float | None = None
    """Stop after this much audio, in seconds."""
    threads: int = 1
    """Inference threads."""

    def stream_config(self) -> StreamConfig:
        """The stream settings these options ask for.

        Raises:
            InputError: ``--fast`` without a file, a hop longer than the window, or a value out of range.
        """
        if self.fast and self.input_file is None:
            raise InputError("--fast needs --input FILE")
        if self.window_s is not None and self.hop_s > self.window_s:
            raise InputError(f"--hop-s ({self.hop_s:g}) must be at most --window-s ({self.window_s:g})")
        from .runtime.vad import VadConfig

        try:
            return StreamConfig(window_ms=None if self.window_s is None else self.window_s * 1000.0,
                                hop_ms=self.hop_s * 1000.0, smoothing=self.smoothing, vad=VadConfig(enabled=self.vad))
        except ValueError as exc:
            raise InputError(str(exc)) from None


@dataclass(frozen=True)
class LiveSession:
    """An open model, its audio source and the session's options: ready to :meth:`run`."""

    runner: Runner
    """The open model."""
    source: Source | None
    """The file being played, or None for the input device."""
    options: LiveOptions
    """Stream, view and log settings."""

    def run(self, *, console: Any = None, out: TextIO | None = None) -> Summary:
        """Run the session (see :func:`run_live`)."""
        return run_live(self.runner, source=self.source, options=self.options, console=console, out=out)


def _file_source(path: Path, runner: Runner, *, fast: bool) -> Source:
    """A file as a source, read by the one audio reader (too short, silent or corrupt audio is refused)."""
    from .audio import load
    from .runtime.listen import ArraySource

    rate = int(runner.spec.sampling_rate)
    return ArraySource(load(path, sampling_rate=rate), rate, realtime=not fast, chunk_ms=FILE_CHUNK_MS,
                       name=path.name)


def open_session(model: Path | None, settings: LiveSettings, *, notify: Any = None) -> LiveSession:
    """Check the options, open the model (:func:`edgeser.runners.open_any`) and the file, if any.

    Args:
        model: a bundle, a model file, a student ``.safetensors``, or None for the embedded default student.
        settings: the session's options.
        notify: called with one line when a student checkpoint is converted to ONNX (the first time).

    Raises:
        InputError: invalid options, a model or file that cannot be opened or read (the file must hold at
            least 0.1 s of sound; see :mod:`edgeser.runtime.audiofile`).
        VerifyError: a bundle that does not match its manifest.
        OutputError: the export cache cannot be written.
    """
    from .runners import open_any

    config = settings.stream_config()
    runner, name = open_any(model, threads=settings.threads, notify=notify)
    source = None if settings.input_file is None else _file_source(settings.input_file, runner, fast=settings.fast)
    options = LiveOptions(config=config, plain=settings.plain, log_path=settings.log_path,
                          duration_s=settings.duration_s, device=settings.device, model_name=name)
    return LiveSession(runner, source, options)
