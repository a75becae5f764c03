"""Dashboard benchmark: latency from an audio frame to the page's update, and the server's memory over time.

The dashboard server (:mod:`edgeser.runtime.web`, the page's-microphone mode) runs in its own process
with the model; headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright) opens the page,
its fake microphone looping a synthetic speech programme (the one ``bench_stream.py`` streams: 4 s of
voiced syllables, 1 s pause), and streams for ``--minutes``. The page times each update from the moment
it sent the 20 ms audio frame that completed the hop to the moment the update arrived (socket, server
queue, window, voice gate, model, JSON, socket back); the server's RSS is read from /proc every
``--rss-every-s`` seconds.

Usage::

    python benchmarks/bench_web.py                       # 10 minutes, the default student
    python benchmarks/bench_web.py --minutes 2 --model bundle_dir
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from bench_stream import MAKE_MODEL, SR, programme

CHROMIUM = Path("/usr/bin/chromium")
P99_TARGET_MS = 100.0
RSS_GROWTH_TARGET_MIB = 2.0
WARMUP_S = 60.0
"""Streaming before the RSS baseline is taken, in seconds (the allocator and the socket buffers settle)."""
SERVER = """
import sys
from edgeser.runtime import open_model
from edgeser.runtime.web import Dashboard
from edgeser.runtime.webparts import WebConfig
Dashboard(open_model(sys.argv[1]), web=WebConfig(port=0), model_name=sys.argv[2]).serve()
"""


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """Resident set size of process ``pid`` in MiB (Linux /proc); ``RssAnon`` or ``RssFile`` for its parts."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, load {os.getloadavg()[0]:.2f}"


def start_server(model: str, name: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, model, name], stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("dashboard: "):
            return proc, line.split()[1]
    raise SystemExit(f"the dashboard did not start (exit {proc.wait()})")


def stream(url: str, wav: Path, server: subprocess.Popen[str], *, minutes: float, rss_every_s: float,
           profile: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--autoplay-policy=no-user-gesture-required", "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={wav}"]
    trace: list[tuple[float, float, int, float]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(str(profile), executable_path=str(CHROMIUM), headless=True,
                                                       args=args)
        page = browser.new_page()
        page.goto(url)
        page.click("#toggle")
        while not page.evaluate("window.edgeser.updates.length"):
            time.sleep(0.1)
        start = time.monotonic()
        end = start + minutes * 60.0
        while True:
            now = time.monotonic()
            trace.append((now - start, rss_mib(server.pid), int(page.evaluate("window.edgeser.updates.length")),
                          rss_mib(server.pid, "RssAnon")))
            if now >= end:
                break
            print(f"  {trace[-1][0]:6.0f} s  RSS {trace[-1][1]:7.2f} MiB (anonymous {trace[-1][3]:7.2f})  "
                  f"{trace[-1][2]} updates", flush=True)
            time.sleep(min(rss_every_s, max(0.0, end - now)))
        result = page.evaluate("({latencies: window.edgeser.latencies, pageDropped: window.edgeser.pageDropped, "
                               "updates: window.edgeser.updates.map(u => [u.latency_ms, u.dropped, u.speech])})")
        page.click("#toggle")
        browser.close()
    version = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True).stdout.strip()
    return {"trace": trace, "version": version, **result}


def report(run: dict[str, Any], *, model: str, minutes: float) -> int:
    e2e = np.asarray(run["latencies"], dtype=np.float64)
    rows = np.asarray(run["updates"], dtype=np.float64).reshape(-1, 3)
    trace = run["trace"]
    base_at = next((i for i, row in enumerate(trace) if row[0] >= min(WARMUP_S, minutes * 30.0)), 0)
    base = trace[base_at][1]
    first, last = trace[0][1], trace[-1][1]
    p50, p99 = np.percentile(e2e, [50, 99])
    growth = last - base
    print(f"\nmachine: {machine()}\nbrowser: {run['version']} (headless)\nmodel: {model}")
    print(f"streamed {minutes:g} min in real time from the page's microphone\n")
    print("| measure | value |\n|---|---|")
    print(f"| updates (with speech) | {len(rows)} ({int(rows[:, 2].sum())}) |")
    print(f"| frame to page update, p50 / p99 / max | {p50:.1f} / {p99:.1f} / {e2e.max():.1f} ms |")
    print(f"| server's processing per update (gate, window, model), p50 / p99 | "
          f"{np.percentile(rows[:, 0], 50):.1f} / {np.percentile(rows[:, 0], 99):.1f} ms |")
    print(f"| dropped samples (server / page) | {int(rows[-1, 1])} / {run['pageDropped']} |")
    print(f"| server RSS at the first update / after {min(WARMUP_S, minutes * 30.0):.0f} s / at the end | "
          f"{first:.2f} / {base:.2f} / {last:.2f} MiB |")
    print(f"| RSS growth after the warm-up (of it anonymous memory) | {growth:+.2f} MiB "
          f"({trace[-1][3] - trace[base_at][3]:+.2f} MiB) |")
    ok = p99 < P99_TARGET_MS and growth < RSS_GROWTH_TARGET_MIB
    print(f"\ntargets: p99 < {P99_TARGET_MS:g} ms: {'met' if p99 < P99_TARGET_MS else 'MISSED'}; "
          f"RSS growth < {RSS_GROWTH_TARGET_MIB:g} MiB: {'met' if growth < RSS_GROWTH_TARGET_MIB else 'MISSED'}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="minutes streamed in real time (default 10)")
    p.add_argument("--model", default=None, help="bundle or model file (default: the default student)")
    p.add_argument("--rss-every-s", type=float, default=30.0, help="seconds between RSS samples")
    args = p.parse_args(argv)
    if not CHROMIUM.is_file():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="edgeser-bench-web-") as tmp:
        if args.model is None:  # the student is exported in a child process: torch stays out of the server
            made = subprocess.run([sys.executable, "-c", MAKE_MODEL, tmp], capture_output=True, text=True, check=True)
            model, name = made.stdout.strip().splitlines()[-2:]
        else:
            model, name = args.model, Path(args.model).name
        wav = Path(tmp) / "programme.wav"
        sf.write(wav, programme(SR), SR, subtype="PCM_16")
        server, url = start_server(model, name)
        try:
            run = stream(url, wav, server, minutes=args.minutes, rss_every_s=args.rss_every_s,
                         profile=Path(tmp) / "profile")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    return report(run, model=name, minutes=args.minutes)


if __name__ == "__main__":
    sys.exit(main())
