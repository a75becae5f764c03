"""Streaming: a resampler, a ring buffer and a window/hop streamer that turns audio chunks into readings.

Feed chunks of any size; every ``hop_samples`` the :class:`Streamer` emits one :class:`Reading` for the
last ``window_samples`` of audio. At the end of the input, :meth:`Streamer.flush` reads a stream that has
given no reading yet once, on all of its audio, so a file shorter than one hop (or, for a model that
takes only its own window, shorter than that window) still gets a reading. Readings depend only on the
audio, never on how it was chunked: windows, hops and the voice-activity frames sit at absolute sample
positions, and the carried-over remainder of each chunk waits for the next one. All buffers are
allocated once (nothing grows with time) and :meth:`Streamer.reset` clears them. Needs numpy only
(this folder is copied into bundles).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .audiofile import MIN_SECONDS
from .engine import Runner
from .vad import EnergyGate, VadConfig, frame_dbfs

__all__ = ["SourceError", "StreamConfig", "Reading", "RingBuffer", "Resampler", "Streamer",
           "DEFAULT_HOP_MS", "RESAMPLER_TAPS_PER_SIDE", "WINDOW_MS_RANGE", "HOP_MS_RANGE", "MAX_SMOOTHING"]

DEFAULT_HOP_MS = 500.0
"""Time between readings, in milliseconds."""
WINDOW_MS_RANGE = (100.0, 60_000.0)
"""Smallest and largest window (``StreamConfig.window_ms``), in milliseconds: 0.1 s to a minute."""
HOP_MS_RANGE = (10.0, 60_000.0)
"""Smallest and largest hop (``StreamConfig.hop_ms``), in milliseconds."""
MAX_SMOOTHING = 0.99
"""Largest smoothing weight (``StreamConfig.smoothing``); 1 would never move."""
RESAMPLER_TAPS_PER_SIDE = 24
"""Half-length of the resampling filter, in samples of the lower of the two rates."""
RESAMPLER_KAISER_BETA = 8.0
"""Kaiser window shape of the resampling filter (about 80 dB stop-band)."""
RESAMPLER_CUTOFF = 0.92
"""Pass-band edge as a fraction of the lower Nyquist frequency."""


class SourceError(RuntimeError):
    """An audio source failed mid-stream (device unplugged, closed or silent); ends a session cleanly."""


@dataclass(frozen=True)
class StreamConfig:
    """How the stream is cut into windows, gated and smoothed."""

    window_ms: float | None = None
    """Window length in ms; None takes the model's ``spec.window_samples``, the window it was calibrated and
    evaluated on (a model with ``fixed_length`` always uses its own)."""
    hop_ms: float = DEFAULT_HOP_MS
    """Time between readings in ms."""
    smoothing: float = 0.0
    """Exponential moving average weight of the previous reading, 0 (off) to below 1; reset by silence."""
    vad: VadConfig = field(default_factory=VadConfig)
    """Voice-activity gate: windows without speech in their last hop are not sent to the model."""
    partial_windows: bool = True
    """Read before the first window is full (on the audio so far, at least one hop); ignored when the model
    takes only fixed-length input."""

    def __post_init__(self) -> None:
        """Refuse a window, hop or smoothing outside its range (nan and infinities included).

        Raises:
            ValueError: naming the setting, its range and the value.
        """
        _check_range("window_ms", self.window_ms, WINDOW_MS_RANGE, optional=True)
        _check_range("hop_ms", self.hop_ms, HOP_MS_RANGE)
        _check_range("smoothing", self.smoothing, (0.0, MAX_SMOOTHING))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_range(name: str, value: object, bounds: tuple[float, float], *, optional: bool = False) -> None:
    if optional and value is None:
        return
    lo, hi = bounds
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not (number and lo <= value <= hi):  # type: ignore[operator]
        raise ValueError(f"{name} must be between {lo:g} and {hi:g}, got {value!r}")


@dataclass(frozen=True)
class Reading:
    """One update of the stream."""

    index: int
    """Update number, from 0."""
    end_s: float
    """Stream time of the window's last sample, in seconds from the start."""
    window_s: float
    """Length of the audio the model saw, in seconds (shorter than the window while it fills)."""
    speech: bool
    """True when the voice gate was open during the last hop (the model ran)."""
    adv: tuple[float, float, float] | None
    """Arousal, dominance, valence (smoothed when smoothing is on); None for silence."""
    level_dbfs: float
    """RMS level of the last hop in dBFS."""
    latency_ms: float
    """Processing time of this update (gate, window, model, smoothing) in milliseconds."""

    def to_dict(self) -> dict[str, Any]:
        a, d, v = self.adv if self.adv is not None else (None, None, None)
        return {"index": self.index, "t": round(self.end_s, 4), "speech": self.speech,
                "arousal": a, "dominance": d, "valence": v, "window_s": round(self.window_s, 4),
                "level_dbfs": round(self.level_dbfs, 2), "latency_ms": round(self.latency_ms, 3)}


class RingBuffer:
    """The last ``capacity`` samples, readable as one contiguous view without copying.

    Every sample is written twice (at ``i`` and ``i + capacity``), so the newest ``capacity``
    samples always lie side by side in memory.
    """

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self._data = np.zeros(2 * capacity, dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        """Empty the buffer (its memory is kept)."""
        self._data[:] = 0.0
        self._pos = 0
        self.filled = 0
        """Samples held, at most ``capacity``."""

    def write(self, x: np.ndarray) -> None:
        """Append samples; only the newest ``capacity`` are kept."""
        x = np.asarray(x, dtype=np.float32).reshape(-1)[-self.capacity:]
        n, cap = x.size, self.capacity
        first = min(n, cap - self._pos)
        for offset, part in ((self._pos, x[:first]), (0, x[first:])):
            self._data[offset:offset + part.size] = part
            self._data[offset + cap:offset + cap + part.size] = part
        self._pos = (self._pos + n) % cap
        self.filled = min(cap, self.filled + n)

    def latest(self, n: int | None = None) -> np.ndarray:
        """A read-only view of the newest ``n`` samples (default: all held)."""
        n = self.filled if n is None else min(n, self.filled)
        end = self._pos + self.capacity
        view = self._data[end - n:end]
        view.flags.writeable = False
        return view


def _kaiser_sinc(up: int, down: int) -> np.ndarray:
    """Polyphase low-pass filter for resampling by up/down: float64 (up, 2 * taps) per output phase."""
    taps = RESAMPLER_TAPS_PER_SIDE * max(1, math.ceil(down / up))
    cutoff = RESAMPLER_CUTOFF * min(1.0, up / down)  # in units of the input Nyquist
    k = np.arange(-taps + 1, taps + 1, dtype=np.float64)  # input offsets (relative to the floor index)
    phase = np.arange(up, dtype=np.float64)[:, None] / up  # fractional position of each output phase
    t = k[None, :] - phase  # (up, 2 * taps): distance from the output point in input samples
    window = np.i0(RESAMPLER_KAISER_BETA * np.sqrt(np.clip(1.0 - (t / taps) ** 2, 0.0, None)))
    h = cutoff * np.sinc(cutoff * t) * window / np.i0(RESAMPLER_KAISER_BETA)
    filters: np.ndarray = h / h.sum(axis=1, keepdims=True)  # unit DC gain per phase
    return filters


class Resampler:
    """Streaming rational resampler (windowed sinc, numpy only), exact under any chunking.

    Output sample ``m`` sits at input position ``m * rate_in / rate_out`` (no time shift); it is
    computed once the input up to half a filter past that position has arrived (a delay of
    ``RESAMPLER_TAPS_PER_SIDE`` samples of the lower rate, 1.5 ms at 16 kHz), from a fixed-length
    history, so the result does not depend on chunk sizes. A stream starts from silence.

    Args:
        rate_in: input rate in Hz.
        rate_out: output rate in Hz.

    Raises:
        ValueError: a rate is not positive.
    """

    def __init__(self, rate_in: int, rate_out: int) -> None:
        if rate_in <= 0 or rate_out <= 0:
            raise ValueError(f"sampling rates must be positive, got {rate_in} Hz -> {rate_out} Hz")
        g = math.gcd(int(rate_in), int(rate_out))
        self.rate_in, self.rate_out = int(rate_in), int(rate_out)
        self.up, self.down = self.rate_out // g, self.rate_in // g
        self.passthrough = self.up == self.down
        self._filters = _kaiser_sinc(self.up, self.down)
        self._taps = self._filters.shape[1] // 2
        self.reset()

    def reset(self) -> None:
        """Forget the history; the next sample is input sample 0."""
        self._history = np.zeros(2 * self._taps, dtype=np.float64)  # inputs [base - 2*taps + 1 .. base]
        self._base = -1  # absolute index of the newest input held
        self._next = 0  # next output index

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        """Resample a chunk; returns the output samples it completes (float32, possibly empty)."""
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        if self.passthrough:
            return chunk
        taps = self._taps
        buf = np.concatenate([self._history, chunk.astype(np.float64)])
        newest = self._base + chunk.size
        # output m needs inputs up to floor(m * down / up) + taps
        last = ((newest - taps + 1) * self.up - 1) // self.down
        m = np.arange(self._next, max(self._next, last + 1), dtype=np.int64)
        centre = m * self.down // self.up
        phase = m * self.down - centre * self.up
        start = centre - taps + 1 - (newest - buf.size + 1)  # index into buf of each output's first tap
        view = np.lib.stride_tricks.sliding_window_view(buf, 2 * taps)
        out = np.einsum("ij,ij->i", view[start], self._filters[phase]) if m.size else np.zeros(0)
        self._history = buf[-2 * taps:].copy()
        self._base = newest
        self._next += m.size
        return out.astype(np.float32)


class Streamer:
    """Window/hop streamer: chunks in, one :class:`Reading` per hop out.

    Args:
        runner: a loaded model (``spec.window_samples``, ``spec.sampling_rate``, ``__call__(window)``).
        config: windows, hop, gate and smoothing.

    Raises:
        ValueError: a non-positive window or hop, a hop longer than the window, or smoothing outside [0, 1).
    """

    def __init__(self, runner: Runner, config: StreamConfig | None = None) -> None:
        self.runner = runner
        self.config = config or StreamConfig()
        self.sampling_rate = int(runner.spec.sampling_rate)
        ms = self.sampling_rate / 1000.0
        fixed = bool(runner.spec.fixed_length)
        window_ms = self.config.window_ms
        self.window_samples = (int(runner.spec.window_samples) if window_ms is None or fixed
                               else int(round(window_ms * ms)))
        """Samples per model window."""
        self.hop_samples = int(round(self.config.hop_ms * ms))
        """Samples between readings."""
        if self.window_samples <= 0 or self.hop_samples <= 0:
            raise ValueError(f"window and hop must be positive, got {self.window_samples} and "
                             f"{self.hop_samples} samples")
        if self.hop_samples > self.window_samples:
            raise ValueError(f"hop ({self.hop_samples} samples) is longer than the window "
                             f"({self.window_samples} samples)")
        if not 0.0 <= self.config.smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {self.config.smoothing}")
        self._partial = self.config.partial_windows and not fixed
        self.ring = RingBuffer(self.window_samples)
        self.gate = EnergyGate(self.config.vad, sampling_rate=self.sampling_rate)
        self.reset()

    def reset(self) -> None:
        """Clear the audio, the gate, the smoothing state and the counters, and reset the runner."""
        self.ring.reset()
        self.gate.reset()
        self.runner.reset()
        self._since_hop = 0
        self._hop_speech = False
        self._heard_speech = False
        self._ema: np.ndarray | None = None
        self.samples_seen = 0
        """Samples fed since the start (or the last reset)."""
        self.updates = 0
        """Readings emitted."""

    def feed(self, chunk: np.ndarray) -> list[Reading]:
        """Add audio at ``sampling_rate``; return the readings for every hop it completes (often none)."""
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        readings: list[Reading] = []
        pos = 0
        while pos < chunk.size:
            take = min(chunk.size - pos, self.hop_samples - self._since_hop)
            part = chunk[pos:pos + take]
            pos += take
            start = time.perf_counter()
            if self._since_hop == 0:  # a hop starts with the gate's state at its first sample
                self._hop_speech = self.gate.is_open
            self._absorb(part)
            if self._since_hop == self.hop_samples:
                reading = self._update(start)
                if reading is not None:
                    readings.append(reading)
        return readings

    def _absorb(self, part: np.ndarray) -> None:
        self.ring.write(part)
        _, states = self.gate.feed(part)
        self._hop_speech = self._hop_speech or bool(states.any())
        self._heard_speech = self._heard_speech or self._hop_speech
        self._since_hop += part.size
        self.samples_seen += part.size

    def _update(self, start: float) -> Reading | None:
        level = float(frame_dbfs(self.ring.latest(self.hop_samples)[None])[0])
        speech = self._hop_speech
        self._since_hop, self._hop_speech = 0, False
        full = self.ring.filled == self.window_samples
        ready = full or (self._partial and self.ring.filled >= self.hop_samples)
        return self._read(start, speech, level) if ready else None

    def flush(self) -> list[Reading]:
        """End of input: a stream that has given no reading yet reads once, on all of its audio.

        The reading covers the whole input (``window_s`` is its length; a model that takes only its own
        window gets it padded by its runner), with speech when the gate opened anywhere in it. Nothing is
        read after an earlier reading, nor for less than the audio readers' minimum (0.1 s).

        Returns:
            the one reading, or nothing.
        """
        if self.updates or self.ring.filled < MIN_SECONDS * self.sampling_rate:
            return []
        start = time.perf_counter()
        level = float(frame_dbfs(self.ring.latest()[None])[0])
        return [self._read(start, self._heard_speech, level)]

    def _read(self, start: float, speech: bool, level: float) -> Reading:
        adv: tuple[float, float, float] | None = None
        if speech:
            raw = np.asarray(self.runner(self.ring.latest()), dtype=np.float64).reshape(-1)[:3]
            s = self.config.smoothing
            self._ema = raw if self._ema is None or s == 0.0 else s * self._ema + (1.0 - s) * raw
            adv = (float(self._ema[0]), float(self._ema[1]), float(self._ema[2]))
        else:
            self._ema = None  # silence ends the smoothing run
        reading = Reading(index=self.updates, end_s=self.samples_seen / self.sampling_rate,
                          window_s=self.ring.filled / self.sampling_rate, speech=speech, adv=adv,
                          level_dbfs=level,
                          latency_ms=(time.perf_counter() - start) * 1000.0)
        self.updates += 1
        return reading
