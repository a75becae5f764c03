"""The listening loop shared by ``edgeser live`` and a bundle runner's ``--mic`` mode.

``source -> Streamer -> runner -> readings``: each reading goes to a callback (the live view) or, by
default, out as one JSON line, and optionally to a CSV log flushed after every row. The loop ends at
the end of the source, after ``duration_s``, on Ctrl-C, or when the source fails; it never raises
for those, it returns a :class:`Summary` saying which. Needs numpy only (sounddevice for a device).

Example (a bundle runner's ``--mic``)::

    from edgeser_runtime import open_model
    from edgeser_runtime.listen import run_device
    sys.exit(run_device(open_model(bundle_dir), device=None, log_path=None))
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TextIO

import numpy as np

from .engine import Runner
from .spec import DIMENSIONS
from .stream import Reading, SourceError, StreamConfig, Streamer

__all__ = ["Source", "ArraySource", "CsvLog", "Summary", "listen", "run_device", "sigterm_as_interrupt",
           "CSV_COLUMNS", "LATENCY_WINDOW", "EXIT_OK", "EXIT_INPUT", "MAX_DURATION_S"]

CSV_COLUMNS = ("time_utc", "index", "t", "speech", *DIMENSIONS, "level_dbfs", "latency_ms", "dropped_samples")
"""Columns of the CSV log, in order."""
LATENCY_WINDOW = 7_200
"""Latest update latencies kept for the p99 (one hour at a 0.5 s hop); bounds memory."""
EXIT_OK = 0
"""Exit status of :func:`run_device` for a session that ended normally or by Ctrl-C."""
EXIT_INPUT = 2
"""Exit status of :func:`run_device` when the device is missing, cannot be opened, or fails mid-stream."""
CHUNK_MS = 100.0
"""Chunk length of an :class:`ArraySource`, in milliseconds."""
MAX_DURATION_S = 1e7
"""Largest ``duration_s`` of a session (about 115 days); None listens until stopped."""


class Source(Protocol):
    """Where audio comes from: mono float32 chunks at ``sampling_rate``."""

    name: str
    sampling_rate: int

    @property
    def dropped_samples(self) -> int:
        """Samples lost so far (read only: a source counts them itself)."""
        ...

    @property
    def overflows(self) -> int:
        """Overflows of the device's buffer so far."""
        ...

    def read(self) -> np.ndarray | None:
        """The next chunk (possibly empty), or None at the end. Raises SourceError on failure."""
        ...

    def close(self) -> None:
        """Release the device or file."""
        ...


class ArraySource:
    """Audio already in memory, played in real time (like a microphone) or as fast as it goes.

    Args:
        audio: float32 (T,) samples at ``sampling_rate``.
        sampling_rate: rate of ``audio`` in Hz.
        realtime: pace the chunks at the audio's own speed.
        chunk_ms: chunk length in milliseconds.
        name: shown in messages and the summary.
    """

    dropped_samples = 0
    overflows = 0

    def __init__(self, audio: np.ndarray, sampling_rate: int, *, realtime: bool = True,
                 chunk_ms: float = CHUNK_MS, name: str = "array") -> None:
        self.audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        self.sampling_rate = int(sampling_rate)
        self.realtime = realtime
        self.chunk_samples = max(1, int(round(chunk_ms * self.sampling_rate / 1000.0)))
        self.name = name
        self._pos = 0
        self._start: float | None = None

    def read(self) -> np.ndarray | None:
        if self._pos >= self.audio.size:
            return None
        end = min(self.audio.size, self._pos + self.chunk_samples)
        if self.realtime:
            now = time.monotonic()
            self._start = now if self._start is None else self._start
            wait = self._start + end / self.sampling_rate - now
            if wait > 0:
                time.sleep(wait)
        chunk, self._pos = self.audio[self._pos:end], end
        return chunk

    def close(self) -> None:
        """Nothing to release."""


class CsvLog:
    """Append readings to a CSV file, flushed after every row so Ctrl-C or a crash loses nothing.

    A new (or empty) file gets the header; an existing log with the same header is appended to.

    Raises:
        ValueError: the file exists with different columns.
        OSError: the file cannot be opened for writing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        header = ",".join(CSV_COLUMNS)
        if self.path.is_file() and self.path.stat().st_size > 0:
            with open(self.path, encoding="utf-8", newline="") as fh:
                first = fh.readline().strip()
            if first != header:
                raise ValueError(f"{self.path}: exists and is not an edgeser live log "
                                 f"(header '{first[:60]}')")
            fresh = False
        else:
            fresh = True
        self._fh: TextIO | None = open(self.path, "a", encoding="utf-8", newline="")  # noqa: SIM115
        self._writer = csv.writer(self._fh)
        if fresh:
            self._writer.writerow(CSV_COLUMNS)
            self._fh.flush()
        self.rows = 0
        """Rows written by this session."""

    def write(self, reading: Reading, *, dropped_samples: int = 0) -> None:
        """Append one reading and flush it to the operating system."""
        if self._fh is None:
            raise ValueError(f"{self.path}: log is closed")
        a, d, v = (f"{x:.6f}" for x in reading.adv) if reading.adv is not None else ("", "", "")
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        self._writer.writerow([stamp, reading.index, f"{reading.end_s:.3f}", int(reading.speech), a, d, v,
                               f"{reading.level_dbfs:.2f}", f"{reading.latency_ms:.3f}", dropped_samples])
        self._fh.flush()
        self.rows += 1

    def close(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()


@dataclass
class Summary:
    """What a listening session did; updated while it runs (the live view reads it)."""

    source: str = ""
    """Name of the source (device or file)."""
    updates: int = 0
    """Readings emitted."""
    speech_updates: int = 0
    """Readings with the voice gate open (the model ran)."""
    audio_s: float = 0.0
    """Audio processed, in seconds."""
    wall_s: float = 0.0
    """Session duration, in seconds."""
    dropped_samples: int = 0
    """Samples lost because the capture queue was full."""
    overflows: int = 0
    """Input overflows the audio device reported."""
    stopped: str = "running"
    """``end`` (source finished), ``duration``, ``interrupted`` (Ctrl-C) or ``error``."""
    error: str | None = None
    """The source's failure message when ``stopped`` is ``error``."""
    log_rows: int = 0
    """Rows written to the CSV log."""
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    """Latest update latencies in ms (bounded)."""

    def latency(self) -> tuple[float, float]:
        """(mean, p99) latency per update in ms over the latest updates (0 before the first)."""
        if not self.latencies_ms:
            return 0.0, 0.0
        values = np.fromiter(self.latencies_ms, dtype=np.float64)
        return float(values.mean()), float(np.percentile(values, 99))

    def line(self) -> str:
        """One line for the end of a session."""
        mean, p99 = self.latency()
        text = (f"{self.stopped}: {self.updates} updates ({self.speech_updates} with speech) over "
                f"{self.audio_s:.1f} s of audio from {self.source}; "
                f"latency mean {mean:.1f} ms, p99 {p99:.1f} ms; "
                f"dropped {self.dropped_samples} samples, {self.overflows} overflows")
        if self.log_rows:
            text += f"; {self.log_rows} rows logged"
        return text + (f"; {self.error}" if self.error else "")


def _json_printer(out: TextIO) -> Callable[[Reading, Summary], None]:
    def emit(reading: Reading, summary: Summary) -> None:
        row = reading.to_dict()
        row["dropped_samples"] = summary.dropped_samples
        out.write(json.dumps(row) + "\n")
        out.flush()

    return emit


def _open_source(source: Source | None, device: str | int | None, sampling_rate: int) -> Source:
    if source is not None:
        return source
    from .mic import MicSource

    return MicSource(device, sampling_rate=sampling_rate)


def listen(runner: Runner, *, source: Source | None = None, device: str | int | None = None,
           config: StreamConfig | None = None, on_reading: Callable[[Reading, Summary], None] | None = None,
           out: TextIO | None = None, log_path: str | Path | None = None,
           duration_s: float | None = None) -> Summary:
    """Stream audio from a source (default: a microphone) through a model until it ends.

    Args:
        runner: an open model (``edgeser_runtime.open_model(bundle_dir)``).
        source: where audio comes from; None opens the input ``device`` with sounddevice.
        device: input device index or name when ``source`` is None; None for the default input.
        config: window, hop, voice gate and smoothing (default: the model's window, 0.5 s hop).
        on_reading: called with each reading and the running summary; None prints JSON lines to ``out``.
        out: where JSON lines go when ``on_reading`` is None (default: stdout).
        log_path: CSV file to append every reading to (flushed per row).
        duration_s: stop after this much audio, in seconds.

    Returns:
        The summary; ``stopped`` says why the session ended, ``error`` carries a device failure.

    Raises:
        NoDeviceError: the input device does not exist or cannot be opened (nothing was started).
        ValueError: an invalid stream config or duration, or a log file of another format.
        OSError: the log file cannot be opened.
    """
    if duration_s is not None and not (isinstance(duration_s, int | float) and 0 <= duration_s <= MAX_DURATION_S):
        raise ValueError(f"duration_s must be between 0 and {MAX_DURATION_S:g} seconds, got {duration_s!r}")
    streamer = Streamer(runner, config)
    emit = on_reading or _json_printer(out or sys.stdout)
    log = CsvLog(log_path) if log_path is not None else None
    try:
        src = _open_source(source, device, streamer.sampling_rate)
    except BaseException:
        if log is not None:
            log.close()
        raise
    if src.sampling_rate != streamer.sampling_rate:
        src.close()
        if log is not None:
            log.close()
        raise ValueError(f"source '{src.name}' delivers {src.sampling_rate} Hz but the model takes "
                         f"{streamer.sampling_rate} Hz")
    summary = Summary(source=src.name)
    started = time.monotonic()
    try:
        _loop(src, streamer, summary, emit, log, duration_s)
    except KeyboardInterrupt:
        summary.stopped = "interrupted"
    except SourceError as exc:
        summary.stopped, summary.error = "error", str(exc)
    finally:
        src.close()
        if log is not None:
            log.close()
        summary.wall_s = time.monotonic() - started
    return summary


def _loop(src: Source, streamer: Streamer, summary: Summary, emit: Callable[[Reading, Summary], None],
          log: CsvLog | None, duration_s: float | None) -> None:
    limit = None if duration_s is None else int(round(duration_s * streamer.sampling_rate))
    while True:
        chunk = src.read()
        if chunk is None:
            summary.stopped = "end"
            break
        if limit is not None:
            chunk = chunk[:max(0, limit - streamer.samples_seen)]
        readings = streamer.feed(chunk)
        summary.dropped_samples, summary.overflows = src.dropped_samples, src.overflows
        summary.audio_s = streamer.samples_seen / streamer.sampling_rate
        _publish(readings, summary, emit, log)
        if limit is not None and streamer.samples_seen >= limit:
            summary.stopped = "duration"
            break
    _publish(streamer.flush(), summary, emit, log)  # an input shorter than one hop still gets its reading


def _publish(readings: list[Reading], summary: Summary, emit: Callable[[Reading, Summary], None],
             log: CsvLog | None) -> None:
    for reading in readings:
        summary.updates += 1
        summary.speech_updates += int(reading.speech)
        summary.latencies_ms.append(reading.latency_ms)
        if log is not None:
            log.write(reading, dropped_samples=summary.dropped_samples)
            summary.log_rows = log.rows
        emit(reading, summary)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (``systemctl stop``, ``kill``) like Ctrl-C while listening, in the main thread only.

    Inside the block SIGTERM raises KeyboardInterrupt, which :func:`listen` turns into a summary with
    ``stopped = "interrupted"``; the previous handler comes back when the block ends.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_device(runner: Runner, *, device: str | int | None = None, log_path: str | Path | None = None,
               config: StreamConfig | None = None, duration_s: float | None = None,
               out: TextIO | None = None, err: TextIO | None = None) -> int:
    """A bundle runner's ``--mic`` mode: JSON lines on ``out``, a summary line on ``err``, an exit status.

    Args:
        runner: an open model.
        device: input device index or name; None for the default input.
        log_path: CSV file to append every reading to.
        config: stream settings (default: the model's window, 0.5 s hop, energy gate on).
        duration_s: stop after this much audio, in seconds (default: until Ctrl-C or a failure).
        out: where the JSON lines go (default stdout).
        err: where messages go (default stderr).

    SIGTERM (``systemctl stop``) ends the session like Ctrl-C: summary line, exit status 0.

    Returns:
        :data:`EXIT_OK` after the end, the duration or Ctrl-C; :data:`EXIT_INPUT` when the device is
        missing, cannot be opened or fails mid-stream, or the log cannot be written.
    """
    err = err or sys.stderr
    try:
        with sigterm_as_interrupt():
            summary = listen(runner, device=device, config=config, out=out, log_path=log_path,
                             duration_s=duration_s)
    except (SourceError, ImportError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=err)
        return EXIT_INPUT
    print(summary.line(), file=err)
    return EXIT_INPUT if summary.stopped == "error" else EXIT_OK
