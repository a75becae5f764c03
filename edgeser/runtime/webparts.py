"""The dashboard's parts: where it listens, who may connect, how much a page may send, and the sources.

Kept apart from the server (:mod:`.web`) so the rules read in one place. Standard library and numpy;
aiohttp is imported only by :func:`aiohttp_web`, when a dashboard starts.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .engine import Runner
from .listen import Source
from .stream import Reading, StreamConfig, Streamer

__all__ = ["WebConfig", "BrowserSession", "StoppableSource", "aiohttp_web", "security_headers", "push_bounded",
           "send_all", "print_err", "hostname", "port_of", "DEFAULT_HOST", "DEFAULT_PORT", "LOCAL_HOSTS",
           "FRAME_MS", "MAX_FRAME_BYTES", "RATE_MARGIN", "RATE_BURST_S", "MAX_CLIENTS", "TOKEN_BYTES"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""Hosts served without a token (only this machine can reach them)."""
FRAME_MS = 20.0
"""Audio per frame the page sends, in milliseconds."""
MAX_FRAME_BYTES = 32_768
"""Largest WebSocket message, in bytes (about 1 s of 16 kHz Int16; a page sends 640-byte frames)."""
RATE_MARGIN = 1.5
"""A browser client may send audio at most this many times faster than real time ..."""
RATE_BURST_S = 2.0
"""... plus this many seconds of audio ahead (network jitter, a tab waking up)."""
MAX_CLIENTS = 8
"""Pages connected at once; more get HTTP 503."""
TOKEN_BYTES = 16
"""Random bytes in a token (``secrets.token_urlsafe``: 22 characters)."""


def aiohttp_web() -> Any:
    """``aiohttp.web``, or an ImportError that says how to install it."""
    try:
        from aiohttp import web
    except ImportError:
        raise ImportError("aiohttp is not installed: pip install 'edgeser[web]' (in a bundle: pip install "
                          "aiohttp)") from None
    return web


@dataclass(frozen=True)
class WebConfig:
    """Where and how the dashboard listens."""

    host: str = DEFAULT_HOST
    """Interface to bind; anything but 127.0.0.1, localhost or ::1 requires a token."""
    port: int = DEFAULT_PORT
    """TCP port; 0 picks a free one."""
    token: str | None = None
    """Token the URL must carry; None: a random one when ``host`` needs it, else none."""
    max_frame_bytes: int = MAX_FRAME_BYTES
    """Largest WebSocket message accepted, in bytes."""
    rate_margin: float = RATE_MARGIN
    """How much faster than real time a browser client may send audio."""
    max_clients: int = MAX_CLIENTS
    """Pages connected at once."""

    def __post_init__(self) -> None:
        """Refuse a port, frame size, margin or client count outside its range.

        Raises:
            ValueError: naming the setting and its range.
        """
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {self.port!r}")
        if not 2 <= self.max_frame_bytes <= 1 << 24:
            raise ValueError(f"max_frame_bytes must be between 2 and {1 << 24}, got {self.max_frame_bytes!r}")
        if not 1.0 <= self.rate_margin <= 100.0:
            raise ValueError(f"rate_margin must be between 1 and 100, got {self.rate_margin!r}")
        if not 1 <= self.max_clients <= 1000:
            raise ValueError(f"max_clients must be between 1 and 1000, got {self.max_clients!r}")

    def resolved_token(self) -> str | None:
        """The token to require: the given one, a fresh random one for a non-local host, or None."""
        if self.token:
            return self.token
        return None if self.host in LOCAL_HOSTS else secrets.token_urlsafe(TOKEN_BYTES)


class StoppableSource:
    """A source that ends (read returns None) once ``stop`` is set; counters pass through."""

    def __init__(self, source: Source, stop: threading.Event) -> None:
        self.source, self._stop = source, stop
        self.name, self.sampling_rate = source.name, source.sampling_rate
        self.interrupted = False
        """True once a read ended the stream because ``stop`` was set (not because the source ended)."""

    @property
    def dropped_samples(self) -> int:
        return self.source.dropped_samples

    @property
    def overflows(self) -> int:
        return self.source.overflows

    def read(self) -> np.ndarray | None:
        chunk = self.source.read()  # first: a source that has ended ends, stopped or not
        if chunk is not None and self._stop.is_set():
            self.interrupted = True
            return None
        return chunk

    def close(self) -> None:
        self.source.close()


class BrowserSession:
    """One page's microphone: its own streamer, and the rate check on what it sends.

    A client may be ahead of real time by at most ``RATE_BURST_S`` seconds, then only ``margin`` times
    faster; audio beyond that closes it (a page records in real time, so only a misbehaving client does).
    """

    def __init__(self, runner: Runner, config: StreamConfig | None, margin: float) -> None:
        self.streamer = Streamer(runner, config)
        self.rate, self.margin = self.streamer.sampling_rate, margin
        self.started: float | None = None
        self.samples = 0

    def admit(self, nbytes: int) -> str | None:
        """None when a frame of ``nbytes`` may be processed, else why the client is closed."""
        if nbytes % 2:
            return "audio frames are 16-bit samples (an even number of bytes)"
        now = time.monotonic()
        self.started = now if self.started is None else self.started
        self.samples += nbytes // 2
        allowed = (now - self.started + RATE_BURST_S) * self.rate * self.margin
        return "audio arrives faster than real time" if self.samples > allowed else None

    def feed(self, data: bytes) -> list[Reading]:
        """Little-endian Int16 samples at the model's rate through the streamer."""
        return self.streamer.feed(np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0)


async def security_headers(request: Any, response: Any) -> None:
    """On every response: a strict content policy (own files and own WebSocket only), no sniffing,
    no referrer (the token never leaves in a Referer header), no caching."""
    csp = (f"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
           f"connect-src 'self' ws://{request.host}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    response.headers.update({"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff",
                             "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})


def hostname(host: str) -> str:
    """The name in a ``Host`` header (``[::1]:8765`` -> ``::1``); empty when it cannot be parsed."""
    try:
        return urlsplit(f"//{host}").hostname or ""
    except ValueError:
        return ""


def port_of(host: str) -> int | None:
    """The port in a ``Host`` header; None when absent or invalid."""
    try:
        return urlsplit(f"//{host}").port
    except ValueError:
        return None


def print_err(line: str) -> None:
    """Print a line on stderr at once."""
    print(line, file=sys.stderr, flush=True)


def push_bounded(queue: asyncio.Queue[str], text: str) -> None:
    """Queue an update for a page; a full queue loses its oldest."""
    if queue.full():
        queue.get_nowait()  # a page that does not keep up loses its oldest update, not the server's memory
    queue.put_nowait(text)


async def send_all(ws: Any, queue: asyncio.Queue[str]) -> None:
    """Send a page its queued updates until it goes away."""
    while True:
        text = await queue.get()
        if ws.closed:
            return
        try:
            await ws.send_str(text)
        except ConnectionError:  # the page went away; its handler frees the rest
            return
