"""The live dashboard: one page, served over HTTP and a WebSocket, showing A/D/V as they happen.

Two ways to get audio, one pipeline (:class:`~.stream.Streamer`: windows, voice gate, smoothing):

* **browser** (no source given): the page records its own microphone, an AudioWorklet downsamples it to
  the model's rate, and 20 ms Int16 frames arrive over the page's WebSocket; each page gets its own
  streamer, and only its own readings back.
* **server** (a :class:`~.listen.Source`, e.g. a file, or the device's microphone): :func:`~.listen.listen`
  runs in a thread and every reading goes to every connected page (a new page first gets the last minute).

Security: binds 127.0.0.1 unless told otherwise; any other host needs a random token in the URL
(``?token=``) for the page, ``/config`` and the WebSocket, and without a token the ``Host`` header must
name this machine (no DNS rebinding). The WebSocket checks its ``Origin`` (this host and port only),
bounds each frame (``max_msg_size``) and the audio rate (closes a client faster than real time by a
margin), and a closed page frees its streamer. Only the files of ``web_static/`` are served, from memory.

Needs numpy and aiohttp (``pip install 'edgeser[web]'``), imported when a dashboard starts.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from .engine import Runner
from .listen import Source, Summary, listen, sigterm_as_interrupt
from .stream import Reading, SourceError, StreamConfig, Streamer
from .webparts import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    FRAME_MS,
    LOCAL_HOSTS,
    BrowserSession,
    StoppableSource,
    WebConfig,
    aiohttp_web,
    hostname,
    port_of,
    print_err,
    push_bounded,
    security_headers,
    send_all,
)

__all__ = ["WebConfig", "Dashboard", "run_web_device", "STATIC_DIR", "HISTORY_S"]

STATIC_DIR = Path(__file__).with_name("web_static")
"""The page: plain HTML, JS and CSS, served from memory (nothing else on disk is reachable)."""
HISTORY_S = 60.0
"""Readings a page shows (and a newly connected page receives), in seconds."""
SEND_QUEUE = 256
"""Updates queued per page before the oldest is dropped (a page that does not read cannot grow memory)."""
HEARTBEAT_S = 10.0
"""WebSocket ping interval; a page that stops answering is closed and its resources freed."""
CLOSE_GOING_AWAY, CLOSE_UNSUPPORTED, CLOSE_POLICY = 1001, 1003, 1008
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
          ".png": "image/png", ".ico": "image/x-icon"}
_PROTECTED = ("/", "/index.html", "/config", "/ws")


def _update(reading: Reading, dropped: int) -> str:
    return json.dumps({"type": "update", **reading.to_dict(), "dropped": dropped})


class Dashboard:
    """The dashboard server: :meth:`start` in a thread, :meth:`stop`, or :meth:`serve` until Ctrl-C.

    Args:
        runner: an open model (stateless; browser sessions share it, one inference at a time).
        config: window, hop, voice gate and smoothing (as ``edgeser live``).
        web: where to listen, token and limits.
        source: server mode: stream this source to every page; None (and ``mic`` off): browser mode.
        mic: server mode on the input ``device`` (opened by :meth:`start`).
        device: input device index or name for ``mic``; None for the default.
        autostart: server mode: start the source at once; False waits for the first page.
        model_name: shown on the page.
        bands: optional words per dimension, shown beside the values: ``{"arousal": [(0.33, "calm"),
            (0.66, "neutral"), (1.0, "excited")], ...}``, upper bounds ascending.
        log_path: server mode: CSV file to append every reading to.
        out: server mode: also print one JSON line per reading here.

    Raises:
        ValueError: invalid stream settings.
    """

    def __init__(self, runner: Runner, *, config: StreamConfig | None = None, web: WebConfig | None = None,
                 source: Source | None = None, mic: bool = False, device: str | int | None = None,
                 autostart: bool = True, model_name: str = "model",
                 bands: Mapping[str, Sequence[tuple[float, str]]] | None = None,
                 log_path: str | Path | None = None, out: TextIO | None = None) -> None:
        self.runner, self.config, self.web = runner, config, web or WebConfig()
        self.mode = "server" if source is not None or mic else "browser"
        self.source, self.mic, self.device, self.autostart = source, mic, device, autostart
        self.log_path, self.out = log_path, out
        probe = Streamer(runner, config)  # validates the settings before anything starts
        self.token = self.web.resolved_token()
        self.info: dict[str, Any] = {
            "mode": self.mode, "sampling_rate": probe.sampling_rate, "frame_ms": FRAME_MS,
            "hop_s": probe.hop_samples / probe.sampling_rate, "window_s": probe.window_samples / probe.sampling_rate,
            "max_frame_bytes": self.web.max_frame_bytes, "history_s": HISTORY_S, "model": model_name,
            "source": source.name if source is not None else "microphone" if mic else "this page's microphone"}
        if bands:
            self.info["bands"] = {dim: [[float(b), str(w)] for b, w in rows] for dim, rows in bands.items()}
        self.history: deque[str] = deque(maxlen=max(1, int(HISTORY_S * probe.sampling_rate / probe.hop_samples)))
        self.port = self.web.port
        self.summary: Summary | None = None
        self.refused: dict[str, int] = {"token": 0, "host": 0, "origin": 0, "busy": 0, "frame": 0, "rate": 0}
        self._clients: dict[Any, asyncio.Queue[str]] = {}
        self._sessions = 0
        self._static = {p.name: (p.read_bytes(), _TYPES[p.suffix]) for p in sorted(STATIC_DIR.iterdir())
                        if p.is_file() and p.suffix in _TYPES}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._pump: threading.Thread | None = None
        self._stop_source = threading.Event()
        self._ready, self.finished = threading.Event(), threading.Event()
        self._status: str | None = None
        self._error: BaseException | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def url(self) -> str:
        """The page's address (with the token when one is required)."""
        host = socket.gethostname() if self.web.host in ("0.0.0.0", "::", "") else self.web.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    def status(self) -> dict[str, Any]:
        """Pages connected, browser audio sessions alive, and refusals by reason."""
        return {"clients": len(self._clients), "sessions": self._sessions, "refused": dict(self.refused)}

    def start(self) -> str:
        """Open the source (server mode), bind, serve in a thread; returns :attr:`url`.

        Raises:
            ImportError: aiohttp (or, for ``mic``, sounddevice) is not installed.
            NoDeviceError: the input device cannot be opened.
            OSError: the address cannot be bound (e.g. the port is in use).
        """
        web = aiohttp_web()
        if self.mic and self.source is None:
            from .mic import MicSource

            self.source = MicSource(self.device, sampling_rate=int(self.info["sampling_rate"]))
            self.info["source"] = self.source.name
        family = socket.AF_INET6 if ":" in self.web.host else socket.AF_INET
        try:
            sock = socket.create_server((self.web.host, self.web.port), family=family)
        except OSError as exc:
            if self.source is not None:
                self.source.close()
            raise OSError(f"cannot listen on {self.web.host}:{self.web.port} ({exc.strerror or exc})") from None
        self.port = int(sock.getsockname()[1])
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgeser-model")
        self._thread = threading.Thread(target=self._serve_thread, args=(web, sock), name="edgeser-web",
                                        daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        if self.mode == "server" and self.autostart:
            self._start_source()
        return self.url

    def stop(self) -> None:
        """Stop the source, close every page, release the port; safe to call twice."""
        self._stop_source.set()
        if self._pump is not None:
            self._pump.join()
        elif self.source is not None:
            self.source.close()
        loop, done = self._loop, self._done
        if loop is not None and done is not None and not loop.is_closed():
            loop.call_soon_threadsafe(done.set)
        if self._thread is not None:
            self._thread.join()
        if self._executor is not None:
            self._executor.shutdown()

    def serve(self, *, say: Callable[[str], None] | None = None,
              on_start: Callable[[str], None] | None = None) -> Summary | None:
        """Start, tell the URL, and serve until Ctrl-C, SIGTERM or a failing source; then stop.

        Args:
            say: called with the line that gives the URL (default: print it on stderr).
            on_start: called with the URL once the server listens (e.g. to open a browser).

        Returns:
            The source's summary in server mode (None in browser mode).
        """
        url = self.start()
        (say or print_err)(f"dashboard: {url}  (Ctrl-C to stop)")
        if on_start is not None:
            on_start(url)
        try:
            with sigterm_as_interrupt():
                while not self.finished.wait(0.2):
                    pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()
        return self.summary

    # -- the source (server mode) -------------------------------------------------------------------
    def _start_source(self) -> None:
        if self._pump is None and self.source is not None:
            self._pump = threading.Thread(target=self._run_source, name="edgeser-source", daemon=True)
            self._pump.start()

    def _run_source(self) -> None:
        if self.source is None:
            return
        src = StoppableSource(self.source, self._stop_source)

        def emit(reading: Reading, summary: Summary) -> None:
            self._post(_update(reading, summary.dropped_samples))
            if self.out is not None:
                self.out.write(json.dumps({**reading.to_dict(), "dropped_samples": summary.dropped_samples}) + "\n")
                self.out.flush()

        try:
            self.summary = listen(self.runner, source=src, config=self.config, on_reading=emit,
                                  log_path=self.log_path)
            if src.interrupted:
                self.summary.stopped = "interrupted"
        except (SourceError, ValueError, OSError) as exc:
            self.summary = Summary(source=src.name, stopped="error", error=str(exc))
        state = "error" if self.summary.stopped == "error" else "ended"
        self._post(json.dumps({"type": "status", "state": state, "message": self.summary.line()}), status=True)
        if state == "error":
            self.finished.set()

    def _post(self, text: str, *, status: bool = False) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._broadcast, text, status)
            except RuntimeError:  # the loop closed in between: nobody is listening any more
                pass

    def _broadcast(self, text: str, status: bool) -> None:
        if status:
            self._status = text
        else:
            self.history.append(text)
        for queue in self._clients.values():
            push_bounded(queue, text)

    # -- the server ------------------------------------------------------------------------------
    def _serve_thread(self, web: Any, sock: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve_async(web, sock))
        except BaseException as exc:  # noqa: BLE001 - handed to start(), which raises it
            self._error = exc
        finally:
            self._ready.set()
            loop.close()

    async def _serve_async(self, web: Any, sock: socket.socket) -> None:
        self._done = asyncio.Event()
        app = web.Application(middlewares=[self._guard_factory(web)])
        app.on_response_prepare.append(security_headers)
        app.router.add_get("/", self._page)
        app.router.add_get("/config", self._config)
        app.router.add_get("/ws", self._socket)
        app.router.add_get("/{name}", self._file)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._ready.set()
        try:
            await self._done.wait()
        finally:
            for ws in list(self._clients):
                await ws.close(code=CLOSE_GOING_AWAY, message=b"server stopping")
            await runner.cleanup()

    def _guard_factory(self, web: Any) -> Any:
        async def guard(request: Any, handler: Any) -> Any:
            if self.token is None and hostname(request.host) not in LOCAL_HOSTS | {self.web.host}:
                self.refused["host"] += 1
                return web.Response(status=403, text="forbidden: this server answers to its own address only\n")
            if request.path in _PROTECTED and self.token is not None:
                given = request.query.get("token", "")
                if not secrets.compare_digest(given.encode(), self.token.encode()):
                    self.refused["token"] += 1
                    return web.Response(status=403, text="forbidden: missing or wrong token\n")
            return await handler(request)

        return web.middleware(guard)

    async def _page(self, request: Any) -> Any:
        return aiohttp_web().Response(body=self._static["index.html"][0], content_type="text/html", charset="utf-8")

    async def _config(self, request: Any) -> Any:
        return aiohttp_web().json_response(self.info)

    async def _file(self, request: Any) -> Any:
        web = aiohttp_web()
        name = request.match_info["name"]
        if name not in self._static:  # only the page's own files, from memory: no path reaches the disk
            raise web.HTTPNotFound()
        body, kind = self._static[name]
        return web.Response(body=body, content_type=kind)

    async def _socket(self, request: Any) -> Any:
        web = aiohttp_web()
        origin = request.headers.get("Origin", "")
        host = request.host
        if origin != f"http://{host}" or (port_of(host) or 80) != self.port:
            self.refused["origin"] += 1
            return web.Response(status=403, text="forbidden: cross-origin WebSocket\n")
        if len(self._clients) >= self.web.max_clients:
            self.refused["busy"] += 1
            return web.Response(status=503, text="busy: too many pages connected\n")
        # no permessage-deflate: PCM hardly compresses, inflating costs a device's CPU, and with it the
        # server's memory grew by about 4 KiB/s for as long as a page streamed (aiohttp 3.14)
        ws = web.WebSocketResponse(max_msg_size=self.web.max_frame_bytes, heartbeat=HEARTBEAT_S, compress=False)
        await ws.prepare(request)
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=SEND_QUEUE)
        self._clients[ws] = queue
        sender = asyncio.create_task(send_all(ws, queue))
        try:
            if self.mode == "server":
                for text in [*self.history, *([self._status] if self._status else [])]:
                    push_bounded(queue, text)
                self._start_source()
            await self._receive(web, ws, queue)
        finally:
            self._clients.pop(ws, None)
            sender.cancel()
            await ws.close()
        return ws

    async def _receive(self, web: Any, ws: Any, queue: asyncio.Queue[str]) -> None:
        session = BrowserSession(self.runner, self.config, self.web.rate_margin) if self.mode == "browser" else None
        self._sessions += session is not None
        loop = asyncio.get_running_loop()
        try:
            async for msg in ws:
                if msg.type == web.WSMsgType.ERROR:
                    self.refused["frame"] += 1  # aiohttp has closed it (1009 for a frame over the size)
                    return
                if msg.type != web.WSMsgType.BINARY or session is None:
                    await ws.close(code=CLOSE_UNSUPPORTED, message=b"this server takes no messages from a page"
                                   if session is None else b"audio only: binary 16-bit PCM frames")
                    return
                problem = session.admit(len(msg.data))
                if problem is not None:
                    self.refused["rate"] += 1
                    await ws.close(code=CLOSE_POLICY, message=problem.encode())
                    return
                for reading in await loop.run_in_executor(self._executor, session.feed, msg.data):
                    push_bounded(queue, _update(reading, 0))
        finally:
            self._sessions -= session is not None


def run_web_device(runner: Runner, *, mic: bool, device: str | int | None = None, log_path: str | Path | None = None,
                   host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, config: StreamConfig | None = None,
                   model_name: str = "model", out: TextIO | None = None, err: TextIO | None = None) -> int:
    """A bundle runner's ``--web``: the dashboard, on the device's microphone (``mic``) or the page's.

    With ``mic`` the readings also go to ``out`` as JSON lines (as ``--mic`` alone). SIGTERM and Ctrl-C end
    it with status 0; a missing or failing device, an unusable address or a missing aiohttp give 2.
    """
    err = err or sys.stderr
    try:
        dash = Dashboard(runner, config=config, web=WebConfig(host=host, port=port), mic=mic, device=device,
                         log_path=log_path, out=(out or sys.stdout) if mic else None, model_name=model_name)
        summary = dash.serve(say=lambda line: print(line, file=err, flush=True))
    except (SourceError, ImportError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    if summary is not None:
        print(summary.line(), file=err)
        return 2 if summary.stopped == "error" else 0
    return 0
