"""The live dashboard: its server over real HTTP and WebSockets, and its page in a real Chromium.

The server tests talk to :class:`edgeser.runtime.web.Dashboard` with aiohttp's client (and raw HTTP for
paths a client would normalise). The browser tests (slow) drive Debian's Chromium with Playwright's
Python package, its fake microphone playing a WAV made here; they skip only when /usr/bin/chromium is
missing. The model is a small ONNX graph made here (:func:`band_onnx`): three shares of the window's
energy (after a first difference, a second difference and a smoothing filter), each as a sigmoid of its
log. Pitch, timbre and a wrong sampling rate move them; digital silence adds nothing to either side of a
share, so where the hops fall hardly does.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from edgeser import testing
from edgeser.runtime import open_model
from edgeser.runtime.engine import MODEL_METADATA_KEY, InputSpec, Runner
from edgeser.runtime.listen import ArraySource, listen
from edgeser.runtime.stream import Resampler
from edgeser.runtime.web import STATIC_DIR, Dashboard
from edgeser.runtime.webparts import RATE_BURST_S, RATE_MARGIN, WebConfig

SR = 16_000
CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
SCREENSHOT_ENV = "EDGESER_UPDATE_SCREENSHOT"
BAND_HZ = 6_000
"""The test audio holds nothing above this: the resamplers on the page's path (Chromium's, then the page's
with its pass band to 92 % of 8 kHz) keep all of it, as a real voice mostly is."""
BANDS = {"arousal": [(0.33, "calm"), (0.66, "neutral"), (1.0, "excited")],
         "valence": [(0.33, "negative"), (0.66, "neutral"), (1.0, "positive")]}
TOLERANCE = 0.05
"""Page (browser microphone) vs ``--input`` on the same audio: largest difference of the mean A/D/V over
the speech updates.

The page's hops fall wherever its first frame lands in the looping file (and Chromium's fake capture
slips by some 10 ms at times), not at sample 0, and its audio went through Chromium's resampler (16 kHz
file -> the device's 44.1 or 48 kHz) and the page's (back to 16 kHz; the audio the server received
matched the file at 43 dB SNR in a manual run). Starting the ``--input`` path 0 to 0.5 s late (10 ms
steps) moves these means by up to 0.022; three runs in Chromium differed from ``--input`` by 0.019,
0.008 and 0.003 at most. The same audio 5 % too fast or slow moves them by 0.08 to 0.09, 10 % by 0.16
to 0.18 (the test checks 10 % slow), so 0.05 tells a faithful path from a wrong one."""


# ---- audio, model and server ---------------------------------------------------------------------------
def utterances(seed: int = 3, *, n: int = 2, talk_s: float = 3.0, pause_s: float = 1.5) -> np.ndarray:
    """``n`` speech-like utterances, each after a pause, as 16-bit values (what a WAV and the page carry).

    Starting with a pause lets the voice gate learn the noise floor, wherever a page starts listening.
    """
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(n):
        clip = np.fft.rfft(testing.synth_clip(rng, seconds=talk_s))
        clip[np.fft.rfftfreq(int(talk_s * SR), 1 / SR) > BAND_HZ] = 0  # both resamplers keep all of it
        parts += [np.zeros(int(pause_s * SR), np.float32), np.fft.irfft(clip, int(talk_s * SR)).astype(np.float32)]
    x = np.concatenate(parts)
    return np.round(x * 32767).astype(np.int16).astype(np.float32) / 32768.0


def readings(runner: Runner, audio: np.ndarray) -> list[dict[str, Any]]:
    """The ``--input`` path: the same streaming loop on the same audio, as fast as it goes."""
    rows: list[dict[str, Any]] = []
    listen(runner, source=ArraySource(audio, SR, realtime=False), on_reading=lambda r, s: rows.append(r.to_dict()))
    return rows


def same(update: dict[str, Any], row: dict[str, Any]) -> bool:
    keys = ("index", "t", "speech", "arousal", "dominance", "valence", "window_s", "level_dbfs")
    return all(update[k] == row[k] for k in keys)


def band_onnx(path: Path, *, window_samples: int = SR) -> Path:
    """A/D/V as sigmoids of log energy shares: after [1, -1], after [1, -2, 1], after [1/4, 1/2, 1/4]."""
    import onnx
    from onnx import TensorProto, helper

    # output: (kernel, gain, centre): sigmoid(gain * log(share / centre)), centred on the test audio
    shares = {"a": ([1.0, -1.0], 4.0, 0.035), "d": ([1.0, -2.0, 1.0], 3.0, 0.067),
              "v": ([0.25, 0.5, 0.25], 30.0, 0.975)}
    nodes = [helper.make_node("Unsqueeze", ["waveform", "one"], ["x"]),  # (N, 1, T)
             helper.make_node("ReduceSumSquare", ["waveform"], ["energy"], axes=[1], keepdims=1),
             helper.make_node("Add", ["energy", "eps"], ["total"])]
    inits = [helper.make_tensor("one", TensorProto.INT64, [1], [1]),
             helper.make_tensor("eps", TensorProto.FLOAT, [1], [1e-9])]
    for k, (kernel, gain, centre) in shares.items():
        inits += [helper.make_tensor(f"k{k}", TensorProto.FLOAT, [1, 1, len(kernel)], kernel),
                  helper.make_tensor(f"g{k}", TensorProto.FLOAT, [1], [gain]),
                  helper.make_tensor(f"c{k}", TensorProto.FLOAT, [1], [float(np.log(centre))])]
        nodes += [helper.make_node("Conv", ["x", f"k{k}"], [f"y{k}"]),
                  helper.make_node("ReduceSumSquare", [f"y{k}"], [f"e{k}"], axes=[2], keepdims=0),  # (N, 1)
                  helper.make_node("Div", [f"e{k}", "total"], [f"r{k}"]),
                  helper.make_node("Add", [f"r{k}", "eps"], [f"s{k}"]),
                  helper.make_node("Log", [f"s{k}"], [f"l{k}"]),
                  helper.make_node("Sub", [f"l{k}", f"c{k}"], [f"m{k}"]),
                  helper.make_node("Mul", [f"m{k}", f"g{k}"], [f"z{k}"])]
    nodes += [helper.make_node("Concat", ["za", "zd", "zv"], ["z"], axis=1),
              helper.make_node("Sigmoid", ["z"], ["adv"])]
    graph = helper.make_graph(nodes, "band_adv", [helper.make_tensor_value_info("waveform", TensorProto.FLOAT,
                                                                                ["batch", "samples"])],
                              [helper.make_tensor_value_info("adv", TensorProto.FLOAT, ["batch", 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {MODEL_METADATA_KEY: InputSpec(window_samples=window_samples).to_json()})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return band_onnx(tmp_path_factory.mktemp("web") / "band.onnx")


@pytest.fixture(scope="module")
def runner(model_path: Path) -> Runner:
    return open_model(model_path)


@contextmanager
def serving(runner: Runner, **kwargs: Any) -> Iterator[Dashboard]:
    dash = Dashboard(runner, web=kwargs.pop("web", WebConfig(port=0)), model_name="test model", **kwargs)
    dash.start()
    try:
        yield dash
    finally:
        dash.stop()


def wait(predicate: Any, what: str, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def raw_get(port: int, path: str, *, host: str = "127.0.0.1", headers: dict[str, str] | None = None) -> tuple[int, str]:
    """GET ``path`` exactly as written (no client-side normalisation of ``..``)."""
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.putrequest("GET", path, skip_host=bool(headers and "Host" in headers))
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


async def _socket(dash: Dashboard, frames: list[bytes], *, origin: str | None = "default", token: str = "",
                  want: int = 0, statuses: int = 0, timeout_s: float = 10.0) -> dict[str, Any]:
    """Connect to /ws, send ``frames``, read until ``want`` updates and ``statuses`` status messages (none:
    until the server closes); what happened."""
    import aiohttp

    base = f"127.0.0.1:{dash.port}"
    headers = {} if origin is None else {"Origin": f"http://{base}" if origin == "default" else origin}
    query = f"?token={token}" if token else ""
    result: dict[str, Any] = {"updates": [], "status": [], "close": None}
    async with aiohttp.ClientSession() as http_session:
        try:
            ws = await http_session.ws_connect(f"ws://{base}/ws{query}", headers=headers)
        except aiohttp.WSServerHandshakeError as exc:
            result["refused"] = exc.status
            return result
        async with ws:
            for frame in frames:
                await ws.send_bytes(frame)
            deadline = time.monotonic() + timeout_s
            while len(result["updates"]) < want or len(result["status"]) < statuses or not (want or statuses):
                msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
                if msg.type == aiohttp.WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    result["updates" if data["type"] == "update" else "status"].append(data)
                    continue
                result["close"] = ws.close_code
                break
    return result


def frames_of(audio: np.ndarray, frame_ms: float = 20.0) -> list[bytes]:
    pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype("<i2")
    n = int(SR * frame_ms / 1000)
    return [pcm[i:i + n].tobytes() for i in range(0, pcm.size, n)]


# ---- the package: light imports, a small page that ships in wheels and bundles --------------------------
def test_the_runtime_does_not_load_the_server_library() -> None:
    code = ("import sys, edgeser.runtime, edgeser.runtime.web, edgeser.runtime.cli; "
            "print(','.join(m for m in ('aiohttp', 'yarl', 'multidict') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_the_page_is_small_and_self_contained() -> None:
    files = {p.name: p.read_text(encoding="utf-8") for p in STATIC_DIR.iterdir()}
    assert set(files) == {"index.html", "app.js", "worklet.js", "style.css"}
    assert sum(len(t.encode()) for t in files.values()) < 100_000
    remote = re.compile(r"""(src|href|url\(|import|fetch\(|addModule\()\s*=?\s*["']?\s*(https?:|wss?:)?//""")
    for name, text in files.items():  # no CDN, no remote font, no chart library: everything from this server
        assert not remote.search(text), (name, remote.search(text))
    for ref in ("style.css", "app.js"):
        assert ref in files["index.html"]
    assert 'addModule("worklet.js")' in files["app.js"]


def test_a_bundle_carries_the_page_and_verifies(tmp_path: Path, model_path: Path) -> None:
    from edgeser.bundle import verify

    folder = testing.tiny_bundle(tmp_path / "b", model=model_path.read_bytes())
    static = folder / "runner" / "edgeser_runtime" / "web_static"
    assert sorted(p.name for p in static.iterdir()) == ["app.js", "index.html", "style.css", "worklet.js"]
    manifest = verify(folder)
    assert "runner/edgeser_runtime/web_static/worklet.js" in manifest["files"]
    assert (folder / "runner" / "edgeser_runtime" / "web.py").is_file()


def test_web_config_ranges() -> None:
    assert WebConfig().host == "127.0.0.1" and WebConfig().resolved_token() is None
    token = WebConfig(host="0.0.0.0").resolved_token()
    assert token is not None and len(token) >= 22 and token != WebConfig(host="0.0.0.0").resolved_token()
    for bad in ({"port": 70000}, {"port": -1}, {"max_frame_bytes": 1}, {"rate_margin": 0.5}, {"max_clients": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            WebConfig(**bad)


# ---- the server over real sockets ----------------------------------------------------------------------
def test_the_page_its_config_and_headers(runner: Runner) -> None:
    with serving(runner, bands=BANDS) as dash:
        status, page = raw_get(dash.port, "/")
        assert status == 200 and "<canvas id=\"plane\"" in page
        status, body = raw_get(dash.port, "/config")
        config = json.loads(body)
        assert config["mode"] == "browser" and config["sampling_rate"] == SR and config["hop_s"] == 0.5
        assert config["bands"]["arousal"][0] == [0.33, "calm"]
        conn = http.client.HTTPConnection("127.0.0.1", dash.port, timeout=5)
        conn.request("GET", "/app.js")
        response = conn.getresponse()
        response.read()
        conn.close()
        assert response.status == 200 and response.getheader("Content-Type", "").startswith("text/javascript")
        csp = response.getheader("Content-Security-Policy", "")
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert response.getheader("Referrer-Policy") == "no-referrer"


@pytest.mark.parametrize("path", ["/../web.py", "/%2e%2e/web.py", "/..%2fweb.py", "/web_static/../web.py",
                                  "/web.py", "/webparts.py", "/app.js/../../web.py", "//etc/passwd",
                                  "/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/.", "/..%5cweb.py"])
def test_nothing_outside_the_page_is_served(runner: Runner, path: str) -> None:
    with serving(runner) as dash:
        status, body = raw_get(dash.port, path)
        assert status == 404, (path, status)
        assert "import " not in body and "root:" not in body
        assert raw_get(dash.port, "/app.js")[0] == 200  # still serving


def test_another_interface_needs_the_token(runner: Runner) -> None:
    """Bound to an address other than 127.0.0.1 (here 127.0.0.2, still this machine), a token is made."""
    with serving(runner, web=WebConfig(host="127.0.0.2", port=0)) as dash:
        token = dash.token
        assert token and dash.url == f"http://127.0.0.2:{dash.port}/?token={token}"
        get = lambda path: raw_get(dash.port, path, host="127.0.0.2")[0]  # noqa: E731
        assert get("/") == 403 and get("/?token=wrong") == 403 and get(f"/?token={token}x") == 403
        assert get("/config") == 403 and get(f"/config?token={token[:-1]}") == 403
        assert get(f"/?token={token}") == 200 and get(f"/config?token={token}") == 200
        assert dash.refused["token"] == 5


def test_the_socket_needs_the_token_too(runner: Runner) -> None:
    with serving(runner, web=WebConfig(port=0, token="a-known-token-for-this-test")) as dash:
        assert asyncio.run(_socket(dash, [], token="wrong", want=1))["refused"] == 403
        assert asyncio.run(_socket(dash, [], want=1))["refused"] == 403
        result = asyncio.run(_socket(dash, frames_of(utterances()[:SR]), token="a-known-token-for-this-test",
                                     want=1))
        assert len(result["updates"]) == 1


def test_a_foreign_host_name_is_refused(runner: Runner) -> None:
    """Without a token the Host header must name this machine: a rebound DNS name gets nothing."""
    with serving(runner) as dash:
        for host in (f"evil.example:{dash.port}", "evil.example", f"192.168.1.9:{dash.port}"):
            assert raw_get(dash.port, "/config", headers={"Host": host})[0] == 403
        assert raw_get(dash.port, "/config", headers={"Host": f"localhost:{dash.port}"})[0] == 200
        assert dash.refused["host"] == 3


def test_the_socket_checks_its_origin(runner: Runner) -> None:
    with serving(runner) as dash:
        for origin in (None, "http://evil.example", f"http://127.0.0.1:{dash.port + 1}", "null",
                       f"https://127.0.0.1:{dash.port}"):
            assert asyncio.run(_socket(dash, [], origin=origin, want=1))["refused"] == 403, origin
        assert dash.refused["origin"] == 5
        assert len(asyncio.run(_socket(dash, frames_of(utterances()[:SR]), want=1))["updates"]) == 1


def test_a_page_streams_through_the_same_pipeline(runner: Runner) -> None:
    """Browser mode over the socket: exactly the ``--input`` readings for the same 16-bit audio."""
    audio = utterances()[:int(2.5 * SR)]
    expected = readings(runner, audio)
    with serving(runner) as dash:
        result = asyncio.run(_socket(dash, frames_of(audio), want=len(expected)))
        wait(lambda: dash.status()["sessions"] == 0 and dash.status()["clients"] == 0, "the session to be freed")
    assert len(result["updates"]) == len(expected) == 5
    assert all(same(u, r) and u["dropped"] == 0 for u, r in zip(result["updates"], expected, strict=True))


def test_an_oversized_frame_closes_that_client_only(runner: Runner) -> None:
    with serving(runner) as dash:
        result = asyncio.run(_socket(dash, [b"\0" * (dash.web.max_frame_bytes + 2)]))
        assert result["close"] == 1009 and not result["updates"]  # 1009: message too big
        wait(lambda: dash.refused["frame"] == 1 and dash.status()["sessions"] == 0, "the session to be freed")
        assert len(asyncio.run(_socket(dash, frames_of(utterances()[:SR]), want=1))["updates"]) == 1


def test_audio_faster_than_real_time_closes_the_client(runner: Runner) -> None:
    allowed_s = RATE_BURST_S * RATE_MARGIN  # what may arrive at once
    with serving(runner) as dash:
        burst = frames_of(np.zeros(int((allowed_s + 1.0) * SR), np.float32))
        result = asyncio.run(_socket(dash, burst))
        assert result["close"] == 1008 and dash.refused["rate"] == 1
        assert asyncio.run(_socket(dash, [b"\0\0\0"]))["close"] == 1008  # half a sample
        wait(lambda: dash.status()["sessions"] == 0 and dash.status()["clients"] == 0, "the sessions to be freed")


def test_the_socket_declines_compression(runner: Runner) -> None:
    """Browsers offer permessage-deflate; inflating costs CPU, and with it the server's memory grew."""
    async def negotiated() -> int:
        import aiohttp

        async with aiohttp.ClientSession() as s, s.ws_connect(
                f"ws://127.0.0.1:{dash.port}/ws", headers={"Origin": f"http://127.0.0.1:{dash.port}"},
                compress=15) as ws:
            return int(ws.compress)

    with serving(runner) as dash:
        assert asyncio.run(negotiated()) == 0


def test_pages_beyond_the_limit_get_503(runner: Runner) -> None:
    async def two() -> tuple[int, Any]:
        import aiohttp

        url, origin = f"ws://127.0.0.1:{dash.port}/ws", {"Origin": f"http://127.0.0.1:{dash.port}"}
        async with aiohttp.ClientSession() as s, s.ws_connect(url, headers=origin):
            try:
                async with s.ws_connect(url, headers=origin):
                    return 101, None
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status, dash.status()["clients"]

    with serving(runner, web=WebConfig(port=0, max_clients=1)) as dash:
        assert asyncio.run(two()) == (503, 1)


def test_server_mode_sends_every_page_the_same_readings(runner: Runner) -> None:
    """A file (``--input``) streamed once to every page; a page that comes later gets the last minute."""
    audio = utterances()
    expected = readings(runner, audio)
    source = ArraySource(audio, SR, realtime=False, name="speech.wav")
    with serving(runner, source=source, autostart=False) as dash:
        assert json.loads(raw_get(dash.port, "/config")[1])["source"] == "speech.wav"
        first = asyncio.run(_socket(dash, [], want=len(expected)))
        wait(lambda: dash.summary is not None, "the file to end")
        second = asyncio.run(_socket(dash, [], want=len(expected), statuses=1))
        assert asyncio.run(_socket(dash, [b"\0\0"], timeout_s=2))["close"] == 1003  # no audio from pages here
    for got in (first["updates"], second["updates"]):
        assert len(got) == len(expected) and all(same(u, r) for u, r in zip(got, expected, strict=True))
    assert second["status"][0]["state"] == "ended" and "from speech.wav" in second["status"][0]["message"]
    assert dash.summary is not None and dash.summary.updates == len(expected)


def test_stop_frees_the_port_and_a_taken_port_is_one_line(runner: Runner) -> None:
    with serving(runner) as dash:
        port = dash.port
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            Dashboard(runner, web=WebConfig(port=port)).start()
    with socket.create_server(("127.0.0.1", port)):
        pass


def test_the_live_command_checks_its_web_options(model_path: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edgeser.cli import app

    cli = CliRunner()
    result = cli.invoke(app, ["live", "--host", "0.0.0.0", "-b", str(model_path)])
    assert result.exit_code == 2 and "--host and --port need --web" in result.output
    result = cli.invoke(app, ["live", "--web", "--log", str(tmp_path / "x.csv"), "-b", str(model_path)])
    assert result.exit_code == 2 and "--log with --web needs --input FILE or --device" in result.output
    assert not (tmp_path / "x.csv").exists()
    with serving(open_model(model_path)) as dash:
        result = cli.invoke(app, ["live", "--web", "--port", str(dash.port), "-b", str(model_path)])
        assert result.exit_code == 2 and "choose another --port" in result.output
        assert len(result.output.strip().splitlines()) == 1


# ---- the commands, as processes --------------------------------------------------------------------------
def _url_from(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "dashboard: http://" in line:
            return line.split("dashboard: ", 1)[1].split()[0]
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"no dashboard URL (exit {proc.poll()})")


@pytest.mark.slow
def test_edgeser_live_web_on_a_file(runner: Runner, model_path: Path, tmp_path: Path) -> None:
    """``edgeser live --web --input``: the file starts with the first page; Ctrl-C ends it with exit 0."""
    audio = utterances()
    sf.write(tmp_path / "speech.wav", audio, SR, subtype="PCM_16")
    expected = readings(runner, audio)
    code = "from edgeser.cli import app; app(prog_name='edgeser')"
    proc = subprocess.Popen([sys.executable, "-c", code, "live", "--web", "--no-browser", "--port", "0", "-b",
                             str(model_path), "-i", str(tmp_path / "speech.wav"), "--fast"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        port = int(_url_from(proc).rsplit(":", 1)[1].strip("/"))
        dash = type("D", (), {"port": port})()
        got = asyncio.run(_socket(dash, [], want=len(expected)))  # type: ignore[arg-type]
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert all(same(u, r) for u, r in zip(got["updates"], expected, strict=True))
    assert f"end: {len(expected)} updates" in stdout + stderr


@pytest.mark.slow
def test_the_bundle_runner_serves_the_page(model_path: Path, tmp_path: Path) -> None:
    """``python -m runner --web`` in a built bundle: the page's microphone; SIGTERM ends it with exit 0."""
    folder = testing.tiny_bundle(tmp_path / "bundle", model=model_path.read_bytes())
    proc = subprocess.Popen([sys.executable, "-B", "-m", "runner", "--web", "--port", "0"], cwd=folder,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(_url_from(proc).rsplit(":", 1)[1].strip("/"))
        status, body = raw_get(port, "/config")
        assert status == 200 and json.loads(body)["mode"] == "browser" and json.loads(body)["model"] == "bundle"
        dash = type("D", (), {"port": port})()
        got = asyncio.run(_socket(dash, frames_of(utterances()[:SR]), want=1))  # type: ignore[arg-type]
        assert len(got["updates"]) == 1
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr


# ---- the page in a real Chromium -------------------------------------------------------------------------
needs_chromium = pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is missing: the browser tests "
                                    "need Debian's chromium (apt-get install chromium; .ci/run installs it)")


@contextmanager
def chromium(tmp_path: Path, microphone: Path | None = None) -> Iterator[Any]:
    """A headless Chromium (a fresh profile) whose fake microphone loops ``microphone``, via Playwright."""
    from playwright.sync_api import sync_playwright

    args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--autoplay-policy=no-user-gesture-required"]
    if microphone is not None:
        args += ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={microphone}"]
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=args,
            viewport={"width": 1100, "height": 1000}, accept_downloads=True)
        try:
            yield context
        finally:
            context.close()


def page_updates(page: Any) -> list[dict[str, Any]]:
    return list(page.evaluate("window.edgeser.updates"))


def speech_wav(tmp_path: Path) -> tuple[Path, np.ndarray]:
    audio = utterances()
    path = tmp_path / "speech.wav"
    sf.write(path, audio, SR, subtype="PCM_16")  # Chromium's fake capture reads 16-bit PCM, and loops it
    return path, audio


def mean_adv(rows: list[dict[str, Any]]) -> np.ndarray:
    """Mean A/D/V over the speech updates (see :data:`TOLERANCE`)."""
    speech = [[r["arousal"], r["dominance"], r["valence"]] for r in rows if r["speech"]]
    assert len(speech) >= 8
    return np.asarray(speech).mean(axis=0)


@pytest.mark.slow
@needs_chromium
def test_the_page_hears_its_microphone_like_the_input_path(runner: Runner, tmp_path: Path) -> None:
    """Browser microphone -> AudioWorklet (to 16 kHz) -> socket -> the same pipeline -> the page shows it."""
    wav, audio = speech_wav(tmp_path)
    loops = 2
    with serving(runner) as dash, chromium(tmp_path, wav) as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(dash.url)
        page.click("#toggle")
        want = int(loops * audio.size / SR / 0.5)
        wait(lambda: len(page_updates(page)) >= want, f"{want} updates", timeout_s=loops * audio.size / SR + 20)
        shot = tmp_path / "live-web.png"
        page.screenshot(path=str(shot))
        page.click("#toggle")  # stop: the page closes its microphone and its socket
        wait(lambda: dash.status()["sessions"] == 0, "the session to end")
        updates = page_updates(page)
        shown = {k: page.inner_text(f"#{k}") for k in ("arousal", "dominance", "valence", "updates", "voice",
                                                       "dropped", "state", "latency")}
        with page.expect_download() as download:
            page.click("#download")
        csv_rows = Path(download.value.path()).read_text().splitlines()
    assert not errors
    # the page received updates in order, and they track the --input path on the same audio
    assert [u["index"] for u in updates] == list(range(len(updates)))
    expected = mean_adv(readings(runner, np.tile(audio, loops)))
    got = mean_adv(updates[:want])
    assert np.abs(got - expected).max() < TOLERANCE, (got, expected)
    slow = Resampler(SR, int(SR * 1.1))(np.concatenate([audio, np.zeros(SR // 10, np.float32)]))
    wrong = mean_adv(readings(runner, np.tile(slow, loops)))  # the same audio, 10 % too slow
    assert np.abs(wrong - expected).max() > 2 * TOLERANCE, (wrong, expected)
    assert any(not u["speech"] for u in updates) and sum(u["speech"] for u in updates) > len(updates) / 2
    # ... and shows them
    last_speech = [u for u in updates if u["speech"]][-1]
    assert shown["arousal"] == f"{last_speech['arousal']:.3f}" and shown["valence"] == f"{last_speech['valence']:.3f}"
    assert shown["updates"] == str(len(updates)) and shown["state"] == "stopped"
    assert shown["voice"] == ("speech" if updates[-1]["speech"] else "silence")
    assert shown["dropped"] == "0 samples" and shown["latency"].startswith("model ")
    assert csv_rows[0] == "time_utc,index,t,speech,arousal,dominance,valence,level_dbfs,latency_ms,dropped_samples"
    assert len(csv_rows) == len(updates) + 1
    assert shot.stat().st_size > 10_000
    if os.environ.get(SCREENSHOT_ENV) == "1":
        (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, REPO / "docs" / "img" / "live-web.png")


@pytest.mark.slow
@needs_chromium
def test_two_pages_then_one_closes_mid_stream(runner: Runner, tmp_path: Path) -> None:
    wav, _ = speech_wav(tmp_path)
    with serving(runner) as dash, chromium(tmp_path, wav) as browser:
        pages = [browser.new_page() for _ in range(2)]
        for page in pages:
            page.goto(dash.url)
            page.click("#toggle")
        wait(lambda: all(len(page_updates(p)) >= 4 for p in pages), "both pages to get updates", 20)
        assert dash.status()["sessions"] == 2 and dash.status()["clients"] == 2
        pages[0].close()  # mid-stream: the tab goes away without pressing Stop
        wait(lambda: dash.status()["sessions"] == 1 and dash.status()["clients"] == 1, "the closed page's session "
             "to be freed")
        before = len(page_updates(pages[1]))
        wait(lambda: len(page_updates(pages[1])) >= before + 3, "the other page to go on", 10)
        third = browser.new_page()  # the server keeps serving
        third.goto(dash.url)
        assert third.evaluate("window.edgeser.state") in ("idle", "running")
        pages[1].close()
        third.close()
        wait(lambda: dash.status()["sessions"] == 0 and dash.status()["clients"] == 0, "every session to end")


@pytest.mark.slow
@needs_chromium
def test_the_page_of_a_file_with_word_bands_and_a_token(runner: Runner, tmp_path: Path) -> None:
    """Server mode (``--input``): the page connects at once, gets every reading, and shows the word bands."""
    audio = utterances()
    expected = readings(runner, audio)
    source = ArraySource(audio, SR, realtime=True, name="speech.wav")
    web = WebConfig(host="127.0.0.2", port=0)  # another address: a token is required
    with serving(runner, source=source, autostart=False, bands=BANDS, web=web) as dash, chromium(tmp_path) as browser:
        page = browser.new_page()
        assert page.goto(dash.url.replace("?token=", "?token=x")).status == 403
        assert page.goto(dash.url).status == 200
        wait(lambda: page.evaluate("window.edgeser.state") == "ended", "the file to end", audio.size / SR + 10)
        updates = page_updates(page)
        band = page.inner_text("#band-arousal")
    assert len(updates) == len(expected) and all(same(u, r) for u, r in zip(updates, expected, strict=True))
    last = [u for u in updates if u["speech"]][-1]["arousal"]
    assert band == next(word for upper, word in BANDS["arousal"] if last <= upper)
