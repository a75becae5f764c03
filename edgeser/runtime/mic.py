"""Microphone capture with sounddevice: the device's native rate, resampled to the model's rate, mono.

The PortAudio callback only copies each block into a bounded :class:`queue.Queue`; everything else
(mixing, resampling, the model) runs in the reading thread. A full queue drops the block and counts
its samples; PortAudio's own input overflows are counted too, so losses are never silent.
sounddevice is imported only when a device is listed or opened (``pip install 'edgeser[mic]'``).
"""

from __future__ import annotations

import math
import queue
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .spec import SAMPLING_RATE
from .stream import Resampler, SourceError

__all__ = ["DeviceInfo", "MicSource", "NoDeviceError", "list_devices", "resolve_device",
           "BLOCK_MS", "QUEUE_MS", "STALL_S"]

BLOCK_MS = 20.0
"""Audio per callback block, in milliseconds."""
QUEUE_MS = 10_000.0
"""Audio the queue holds before it drops blocks, in milliseconds (bounds memory)."""
STALL_S = 2.0
"""A device that delivers nothing for this long, in seconds, has failed."""
POLL_S = 0.1
"""Longest wait for one block, in seconds (keeps Ctrl-C responsive)."""


class NoDeviceError(SourceError):
    """No usable input device, or the named one does not exist."""


@dataclass(frozen=True)
class DeviceInfo:
    """An input device as PortAudio reports it."""

    index: int
    """PortAudio device index."""
    name: str
    """Device name."""
    channels: int
    """Input channels."""
    default_samplerate: float
    """Native (default) rate in Hz."""
    is_default: bool
    """True for the system's default input."""

    def describe(self) -> str:
        star = "*" if self.is_default else " "
        return f"{star}{self.index}: {self.name} ({self.channels} ch, {self.default_samplerate:g} Hz)"


def _sounddevice() -> ModuleType:
    try:
        import sounddevice  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise ImportError("sounddevice is not installed: pip install 'edgeser[mic]'") from None
    except OSError as exc:  # the PortAudio shared library is missing
        raise ImportError(f"sounddevice cannot load PortAudio ({exc}); on Debian/Raspberry Pi OS: "
                          "apt install libportaudio2") from None
    module: ModuleType = sounddevice
    return module


def list_devices() -> list[DeviceInfo]:
    """Input devices (those with at least one input channel), the default marked.

    Raises:
        ImportError: sounddevice or PortAudio is not installed.
    """
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        default = sd.default.device[0]
    except sd.PortAudioError:
        return []
    found = []
    for d in devices:
        if int(d["max_input_channels"]) > 0:
            found.append(DeviceInfo(int(d["index"]), str(d["name"]), int(d["max_input_channels"]),
                                    float(d["default_samplerate"]), int(d["index"]) == default))
    return found


def _no_device(message: str, devices: list[DeviceInfo]) -> NoDeviceError:
    listing = "; ".join(d.describe().strip() for d in devices) if devices else "none"
    return NoDeviceError(f"{message} (input devices: {listing}); use --input FILE to play a file instead")


def resolve_device(device: str | int | None = None) -> DeviceInfo:
    """Find an input device by index, exact name, or unique part of its name; None: the default.

    Raises:
        NoDeviceError: there is no input device, or none (or several) match ``device``.
    """
    devices = list_devices()
    if not devices:
        raise _no_device("no audio input device found", [])
    if device is None:
        chosen = [d for d in devices if d.is_default] or devices[:1]
        return chosen[0]
    text = str(device).strip()
    if text.isdigit():
        matches = [d for d in devices if d.index == int(text)]
    else:
        matches = [d for d in devices if d.name == text] or [
            d for d in devices if text.lower() in d.name.lower()]
    if len(matches) != 1:
        what = "no input device matches" if not matches else f"{len(matches)} input devices match"
        raise _no_device(f"{what} '{text}'", devices)
    return matches[0]


class MicSource:
    """A live input device as a chunk source for :func:`edgeser_runtime.listen.listen`.

    Args:
        device: index or name (see :func:`resolve_device`); None for the default input.
        sampling_rate: rate of the chunks :meth:`read` returns, in Hz (the model's rate).
        capture_rate: rate to open the device at; None for its native rate.

    Raises:
        NoDeviceError: no such device, or it cannot be opened.
        ImportError: sounddevice or PortAudio is not installed.
    """

    def __init__(self, device: str | int | None = None, *, sampling_rate: int = SAMPLING_RATE,
                 capture_rate: int | None = None) -> None:
        self._sd = _sounddevice()
        self.device = resolve_device(device)
        self.capture_rate = int(capture_rate or round(self.device.default_samplerate))
        """Rate the device is opened at, in Hz."""
        self.sampling_rate = int(sampling_rate)
        self.name = self.device.name
        self.dropped_samples = 0
        """Captured samples lost because the queue was full."""
        self.overflows = 0
        """Blocks PortAudio flagged as input overflow (audio lost before it reached us)."""
        self._block = max(1, int(round(self.capture_rate * BLOCK_MS / 1000.0)))
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=max(2, math.ceil(QUEUE_MS / BLOCK_MS)))
        self._resampler = Resampler(self.capture_rate, self.sampling_rate)
        self._finished = False
        self._stream = self._open()
        self._last_data = time.monotonic()

    def _open(self) -> Any:
        sd = self._sd
        errors = []
        for channels in dict.fromkeys((1, self.device.channels)):
            try:
                stream = sd.InputStream(device=self.device.index, samplerate=self.capture_rate,
                                        channels=channels, dtype="float32", blocksize=self._block,
                                        callback=self._callback, finished_callback=self._on_finished)
                stream.start()
                return stream
            except sd.PortAudioError as exc:
                errors.append(f"{channels} ch: {exc}")
        raise _no_device(f"cannot open input device '{self.device.name}' at {self.capture_rate} Hz "
                         f"({'; '.join(errors)})", list_devices())

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio thread: count overflows, enqueue a copy, never block."""
        del time_info
        if status.input_overflow:
            self.overflows += 1
        try:
            self._queue.put_nowait(indata.copy())
        except queue.Full:
            self.dropped_samples += frames

    def _on_finished(self) -> None:
        self._finished = True

    def read(self) -> np.ndarray:
        """The next chunk at ``sampling_rate`` (mono float32, possibly empty); waits for the device.

        Raises:
            SourceError: the device stopped, failed or delivered nothing for ``STALL_S`` seconds.
        """
        try:
            block = self._queue.get(timeout=POLL_S)
        except queue.Empty:
            self._check_alive()
            return np.zeros(0, dtype=np.float32)
        self._last_data = time.monotonic()
        mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1)
        return self._resampler(mono)

    def _check_alive(self) -> None:
        try:
            active = bool(self._stream.active)
        except self._sd.PortAudioError as exc:
            raise SourceError(f"input device '{self.name}' failed: {exc}") from None
        if self._finished or not active:
            raise SourceError(f"input device '{self.name}' stopped (disconnected or closed)")
        if time.monotonic() - self._last_data > STALL_S:
            raise SourceError(f"input device '{self.name}' delivered no audio for {STALL_S:g} s")

    def close(self) -> None:
        """Stop and close the device (safe to call twice, and after a failure)."""
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.abort()
            stream.close()
        except self._sd.PortAudioError:
            pass  # the device is gone already; nothing left to release

    def __enter__(self) -> MicSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
