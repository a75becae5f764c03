"""Streaming benchmark: hours of synthetic speech through the ``edgeser live`` pipeline, single thread.

Part 1 (as fast as it goes): the audio goes through the same :class:`Streamer` (energy gate, ring
buffer, model, smoothing) that ``edgeser live`` and a bundle's ``--mic`` use, in 20 ms chunks (and
through the streaming resampler when ``--source-rate`` is not 16 kHz). It reports updates per second,
mean and p99 latency per update, CPU time per second of audio, and RSS at the start and the end.

Part 2 (real time): a capture thread delivers 20 ms blocks on the clock into :class:`MicSource`'s own
callback and bounded queue (a stand-in for sounddevice), while :func:`listen` consumes them; it reports
dropped samples and overflows.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_stream.py                  # 1 h, default model if installed
    python benchmarks/bench_stream.py --hours 0.1 --realtime-s 30 --model bundle_dir --window-ms 3000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

from edgeser.runtime.engine import Runner
from edgeser.runtime.stream import Resampler, StreamConfig, Streamer

SR = 16_000
CHUNK_MS = 20.0
"""Chunk fed per step, in ms (what a 20 ms audio callback delivers)."""
LOOP_S = 60
"""Length of the synthetic programme that is repeated, in seconds."""
WARMUP_S = 60
"""Audio streamed before the start RSS is taken, in seconds."""
RSS_TRACE_S = 300
"""RSS is sampled every this many seconds of audio."""


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def programme(rate: int, seed: int = 0) -> np.ndarray:
    """LOOP_S seconds of speech-like audio: 4 s voiced syllables, 1 s pauses, faint noise throughout.

    Made one second at a time (the phase carried over), so its float64 temporaries stay small: made in
    one go they were about 50 MiB, which the allocator kept, and the start RSS counted them.
    """
    rng = np.random.default_rng(seed)
    out = np.empty(LOOP_S * rate, dtype=np.float32)
    phase0, peak = 0.0, 0.0
    for start in range(0, out.size, rate):
        t = np.arange(start, min(start + rate, out.size)) / rate
        f0 = 120.0 + 60.0 * np.sin(2 * np.pi * 0.13 * t) + 20.0 * np.sin(2 * np.pi * 0.9 * t)
        phase = phase0 + 2 * np.pi * np.cumsum(f0) / rate
        phase0 = float(phase[-1])
        voice = sum(np.sin(k * phase) / k for k in range(1, 14))
        peak = max(peak, float(np.abs(voice).max()))
        syllables = np.maximum(0.0, np.sin(2 * np.pi * 4.3 * t)) ** 1.5
        out[start:start + t.size] = voice * syllables * ((t % 5.0) < 4.0)
    out *= 0.15 / peak
    out += (3e-4 * rng.standard_normal(out.size)).astype(np.float32)
    return out


MAKE_MODEL = """
import sys
from pathlib import Path
from edgeser.errors import InputError
from edgeser.runners import default_runner
try:
    print(default_runner().path)
    print("default student (wav2small.default.safetensors)")
except InputError:
    import torch
    from edgeser.export.onnx import export
    from edgeser.models import create_model
    from edgeser.recipe import load_recipe
    from edgeser.runtime import InputSpec
    torch.manual_seed(0)
    recipe = load_recipe("rpi")
    out = Path(sys.argv[1]) / "wav2small.onnx"
    spec = InputSpec(window_samples=recipe.window_samples())
    export(create_model("wav2small"), out, recipe=recipe, spec=spec)
    print(out)
    print("random-init wav2small (the default student is not installed)")
"""


def open_bench_model(path: str | None, tmp: Path) -> tuple[Runner, str]:
    """The given model, else the embedded default student, else a random-init Wav2Small (same size).

    A student is exported in a child process, so torch never loads into the measured process.
    """
    from edgeser.runtime import open_model

    if path is None:
        made = subprocess.run([sys.executable, "-c", MAKE_MODEL, str(tmp)], capture_output=True, text=True,
                              check=True)
        path, name = made.stdout.strip().splitlines()[-2:]
        return open_model(path), name
    return open_model(path), Path(path).name


def fast_run(runner: Runner, *, hours: float, source_rate: int, config: StreamConfig) -> dict[str, Any]:
    """Stream ``hours`` of audio as fast as possible; latency per update, CPU, RSS."""
    loop = programme(source_rate)
    chunk = int(source_rate * CHUNK_MS / 1000)
    resample = Resampler(source_rate, SR)
    streamer = Streamer(runner, config)
    total = int(hours * 3600 * source_rate)

    size = int(hours * 3600 * 1000 / streamer.config.hop_ms) + 2
    latencies, cpu_ms = np.zeros(size), np.zeros(size)  # allocated up front: no growth while measuring

    trace: list[float] = []
    trace_every = RSS_TRACE_S * source_rate // chunk

    def stream(samples: int, record: bool) -> tuple[int, int]:
        speech = updates = 0
        for step, start in enumerate(range(0, samples, chunk)):
            i = start % loop.size
            if record and step % trace_every == 0:
                trace.append(rss_mib())
            cpu_before = time.thread_time()
            readings = streamer.feed(resample(loop[i:i + chunk]))
            if readings and record:  # 20 ms chunks: at most one update per chunk
                cpu_ms[updates] = (time.thread_time() - cpu_before) * 1000.0
            for r in readings:
                speech += r.speech
                if record:
                    latencies[updates] = r.latency_ms
                updates += 1
        return speech, updates

    stream(WARMUP_S * source_rate, False)
    rss_start = rss_mib()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    speech, updates = stream(total, True)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    rss_end = rss_mib()
    trace.append(rss_end)
    lat, upd_cpu = latencies[:updates], cpu_ms[:updates]
    audio_s = total / source_rate
    return {"audio_s": audio_s, "updates": lat.size, "speech_updates": speech, "wall_s": wall,
            "updates_per_s": lat.size / wall, "mean_ms": float(lat.mean()),
            "p99_ms": float(np.percentile(lat, 99)), "max_ms": float(lat.max()),
            "cpu_ms_per_audio_s": 1000.0 * cpu / audio_s, "realtime_factor": audio_s / wall,
            "rss_start_mib": rss_start, "rss_end_mib": rss_end, "window_samples": streamer.window_samples,
            "rss_trace_mib": trace, "cpu_mean_ms": float(upd_cpu.mean()),
            "cpu_p99_ms": float(np.percentile(upd_cpu, 99))}


def _paced_sounddevice(audio: np.ndarray, rate: int) -> types.ModuleType:
    """A sounddevice stand-in whose stream calls the callback with 20 ms blocks on the wall clock."""
    mod = types.ModuleType("sounddevice")
    mod.PortAudioError = RuntimeError  # type: ignore[attr-defined]
    mod.default = types.SimpleNamespace(device=[0, 0])  # type: ignore[attr-defined]
    mod.query_devices = lambda: [{"index": 0, "name": "paced", "max_input_channels": 1,  # type: ignore[attr-defined]
                                  "default_samplerate": float(rate)}]

    class Stream:
        def __init__(self, *, blocksize: int, callback: Any, **_: Any) -> None:
            self.blocksize, self.callback, self.active = blocksize, callback, False
            self.thread = threading.Thread(target=self.run, daemon=True)

        def start(self) -> None:
            self.active = True
            self.thread.start()

        def run(self) -> None:
            ok = types.SimpleNamespace(input_overflow=False)
            start, n = time.monotonic(), 0
            while self.active:
                i = (n * self.blocksize) % (audio.size - self.blocksize)
                self.callback(audio[i:i + self.blocksize, None], self.blocksize, None, ok)
                n += 1
                time.sleep(max(0.0, start + n * self.blocksize / rate - time.monotonic()))

        def abort(self) -> None:
            self.active = False

        def close(self) -> None:
            self.thread.join(timeout=1)

    mod.InputStream = Stream  # type: ignore[attr-defined]
    return mod


def realtime_run(runner: Runner, *, seconds: float, source_rate: int, config: StreamConfig) -> dict[str, Any]:
    """Capture thread on the clock -> MicSource queue -> listen, for ``seconds``; counts losses."""
    import io

    sys.modules["sounddevice"] = _paced_sounddevice(programme(source_rate, seed=1), source_rate)
    from edgeser.runtime.listen import listen
    from edgeser.runtime.mic import MicSource

    source = MicSource(None, sampling_rate=SR)
    summary = listen(runner, source=source, config=config, out=io.StringIO(), duration_s=seconds)
    mean, p99 = summary.latency()
    return {"audio_s": summary.audio_s, "wall_s": summary.wall_s, "updates": summary.updates,
            "dropped_samples": summary.dropped_samples, "overflows": summary.overflows,
            "mean_ms": mean, "p99_ms": p99}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, default=1.0, help="audio streamed as fast as it goes")
    p.add_argument("--realtime-s", type=float, default=60.0, help="seconds streamed in real time (0: skip)")
    p.add_argument("--source-rate", type=int, default=SR, help="capture rate in Hz (not 16000: resampled)")
    p.add_argument("--hop-ms", type=float, default=500.0, help="time between updates")
    p.add_argument("--model", default=None, help="bundle or model file (default: the default student)")
    p.add_argument("--window-ms", type=float, default=None, help="window (default: the model's own)")
    args = p.parse_args(argv)
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        runner, name = open_bench_model(args.model, Path(tmp))
        config = StreamConfig(window_ms=args.window_ms, hop_ms=args.hop_ms)
        fast = fast_run(runner, hours=args.hours, source_rate=args.source_rate, config=config)
        print(f"model: {name}; window {fast['window_samples'] / SR:g} s, hop {args.hop_ms:g} ms, "
              f"source {args.source_rate} Hz, {CHUNK_MS:g} ms chunks, 1 thread; load average before: "
              f"{load_before}")
        print("\n| as fast as it goes | value |\n|---|---|")
        rows = [("audio streamed", f"{fast['audio_s'] / 3600:.2f} h"),
                ("updates (with speech: model ran)", f"{fast['updates']} ({fast['speech_updates']})"),
                ("updates per second", f"{fast['updates_per_s']:.1f}"),
                ("wall-clock latency per update, mean / p99 / max", f"{fast['mean_ms']:.2f} / {fast['p99_ms']:.2f} / "
                 f"{fast['max_ms']:.2f} ms"),
                ("CPU time per update (the chunk that completes it), mean / p99",
                 f"{fast['cpu_mean_ms']:.2f} / {fast['cpu_p99_ms']:.2f} ms"),
                ("CPU time per second of audio", f"{fast['cpu_ms_per_audio_s']:.2f} ms"),
                ("speed", f"{fast['realtime_factor']:.0f}x real time"),
                ("RSS start / end (growth)", f"{fast['rss_start_mib']:.1f} / {fast['rss_end_mib']:.1f} MiB "
                 f"({fast['rss_end_mib'] - fast['rss_start_mib']:+.2f} MiB)"),
                (f"RSS every {RSS_TRACE_S // 60} min of audio, and at the end",
                 " ".join(f"{x:.1f}" for x in fast["rss_trace_mib"]))]
        for k, v in rows:
            print(f"| {k} | {v} |")
        if args.realtime_s > 0:
            rt = realtime_run(runner, seconds=args.realtime_s, source_rate=args.source_rate, config=config)
            print("\n| real time (capture thread -> MicSource queue -> listen) | value |\n|---|---|")
            print(f"| audio / wall | {rt['audio_s']:.1f} s / {rt['wall_s']:.1f} s |")
            print(f"| updates | {rt['updates']} |")
            print(f"| latency per update, mean / p99 | {rt['mean_ms']:.2f} / {rt['p99_ms']:.2f} ms |")
            print(f"| dropped samples / overflows | {rt['dropped_samples']} / {rt['overflows']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
