"""Peak memory of ``edgeser predict`` and the bundle runner on a long recording (run by hand, not a test).

Writes a 48 kHz stereo 16-bit WAV of ``--minutes`` (default 120: 1.3 GB on disk) into a temporary folder,
builds the default rpi bundle there (or takes ``--bundle``), then runs, each in its own process:

- ``edgeser predict --model BUNDLE FILE``: the host command, which reads the file block by block;
- ``python -m runner FILE`` inside the bundle: the device runner, the same reader;
- the whole-file path for comparison (``runtime.audiofile.read`` then ``predict_signal``), the way both
  commands read files before they streamed;
- ``edgeser --version``: the interpreter and CLI imports alone.

It prints one table: peak RSS (MiB, from ``getrusage`` of the child) and wall time of each, the ratio of
each to the whole-file path, and the target (predict under 200 MiB on a 2-hour file).

    python benchmarks/bench_predict_memory.py                 # 2 hours, default bundle
    python benchmarks/bench_predict_memory.py --minutes 20 --bundle edgeser-rpi
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RATE = 48_000
TARGET_MIB = 200
WHOLE_FILE = """
import sys
from edgeser.runtime.engine import open_model
from edgeser.runtime.audiofile import read
from edgeser.runtime.predict import predict_signal
runner = open_model(sys.argv[1])
print(predict_signal(runner, read(sys.argv[2], runner.spec.sampling_rate)).mean)
"""


def write_recording(path: Path, minutes: float, *, seed: int = 0) -> None:
    """A speech-like stereo signal (noise bursts under a slow envelope), written a minute at a time."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    with sf.SoundFile(path, "w", samplerate=RATE, channels=2, subtype="PCM_16") as f:
        left = int(minutes * 60 * RATE)
        while left > 0:
            n = min(left, 60 * RATE)
            t = np.arange(n) / RATE
            envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
            mono = 0.2 * envelope * rng.standard_normal(n)
            f.write(np.stack([mono, 0.8 * mono], axis=1).astype(np.float32))
            left -= n


def measure(cmd: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """Peak RSS (MiB) and wall time (s) of a child process that must succeed.

    Each command runs under a fresh ``python -c`` wrapper so ``RUSAGE_CHILDREN`` sees only that child.
    """
    wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
               "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True); "
               "dt = time.perf_counter() - t; "
               "sys.exit(r.stderr) if r.returncode else "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, dt)")
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], cwd=cwd, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{out.stderr}")
    rss_kib, wall = out.stdout.split()
    return int(rss_kib) / 1024, float(wall)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=120.0, help="length of the recording (default 120)")
    p.add_argument("--bundle", type=Path, default=None, help="an rpi bundle (default: build the default one)")
    p.add_argument("--skip-whole-file", action="store_true", help="skip the whole-file comparison (needs ~4x RAM)")
    args = p.parse_args()
    edgeser = shutil.which("edgeser") or sys.exit("edgeser is not on PATH: pip install . first")
    tmp = Path(tempfile.mkdtemp(prefix="edgeser-bench-memory-"))
    try:
        bundle = args.bundle
        if bundle is None:
            bundle = tmp / "edgeser-rpi"
            subprocess.run([edgeser, "build", "--target", "rpi", "--out", str(bundle), "--quiet"], check=True,
                           stdout=subprocess.DEVNULL)
        recording = tmp / "long.wav"
        t = time.perf_counter()
        write_recording(recording, args.minutes)
        print(f"wrote {recording.stat().st_size / 2**30:.2f} GiB ({args.minutes:g} min, {RATE} Hz stereo PCM_16) "
              f"in {time.perf_counter() - t:.0f} s")
        rows = [("edgeser --version (imports only)", *measure([edgeser, "--version"])),
                ("edgeser predict --model BUNDLE FILE",
                 *measure([edgeser, "predict", "--model", str(bundle), str(recording)])),
                ("python -m runner FILE (in the bundle)",
                 *measure([sys.executable, "-m", "runner", str(recording)], cwd=bundle))]
        if not args.skip_whole_file:
            rows.append(("whole file: read() + predict_signal",
                         *measure([sys.executable, "-c", WHOLE_FILE, str(bundle), str(recording)])))
        whole = rows[-1][1] if not args.skip_whole_file else None
        print(f"\n{'command':<40} {'peak RSS MiB':>12} {'wall s':>8} {'RSS / whole':>12}")
        for name, rss, wall in rows:
            ratio = f"{rss / whole:.2f}" if whole else "-"
            print(f"{name:<40} {rss:12.0f} {wall:8.1f} {ratio:>12}")
        predict_rss = rows[1][1]
        verdict = "met" if predict_rss < TARGET_MIB else "MISSED"
        print(f"\ntarget: predict under {TARGET_MIB} MiB on this recording: {verdict} ({predict_rss:.0f} MiB)")
        print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
              f"max RSS counted by getrusage ({resource.getpagesize()} B pages)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
