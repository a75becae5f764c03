"""rpi build benchmark: latency of torch eager, ORT float and ORT int8 (1 thread), sizes, runner peak RSS.

Run by hand (not a test); prints a table measured in one run on this machine:

    python benchmarks/bench_rpi.py                    # embedded default student and calibration set
    python benchmarks/bench_rpi.py --student S --audio DIR --teacher T

Ratios (int8 vs float, int8 vs torch) are what to compare across machines; absolute times depend on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _time(fn, x, repeats: int) -> float:
    for _ in range(3):
        fn(x)
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


RSS_PROBE = """
import runpy, sys
sys.argv = ["runner", sys.argv[1]]
try:
    runpy.run_module("runner", run_name="__main__")
except SystemExit as exc:
    if exc.code:
        raise
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print("VmHWM", hwm, file=sys.stderr)
"""


def _runner_rss(bundle: Path, wav: Path) -> float:
    """Peak RSS (MiB) of the bundle runner predicting one file: VmHWM of a fresh process (Linux)."""
    proc = subprocess.run([sys.executable, "-c", RSS_PROBE, str(wav)], cwd=bundle, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    kib = next(int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("VmHWM"))
    return kib / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--student")
    p.add_argument("--teacher")
    p.add_argument("--audio")
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--no-gate", action="store_true", help="time the int8 model even if it is over the drift budget")
    args = p.parse_args()

    import soundfile as sf
    import torch

    from edgeser import models
    from edgeser.build import build
    from edgeser.defaults import default_student_path
    from edgeser.runtime import open_model

    torch.set_num_threads(1)
    student = Path(args.student) if args.student else default_student_path()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        overrides = {"drift.max_ccc_drop": 2.0, "drift.min_ccc_vs_float": -1.0} if args.no_gate else {}
        result = build(target="rpi", student=student, teacher=args.teacher, audio=args.audio, out=tmp / "b",
                       overrides=overrides)
        build_s = time.perf_counter() - t
        bundle = result.out
        manifest = json.loads((bundle / "manifest.json").read_text())
        model = models.load(student)
        float_onnx = tmp / "float.onnx"
        from edgeser.export.onnx import export
        from edgeser.recipe import load_recipe
        from edgeser.runtime.engine import InputSpec

        export(model, float_onnx, recipe=load_recipe("rpi"), spec=InputSpec())
        ort_float = open_model(float_onnx, threads=1)
        ort_int8 = open_model(bundle, threads=1)
        rows = []
        for seconds in (1, 4):
            x = (np.random.default_rng(0).standard_normal(16000 * seconds) * 0.1).astype(np.float32)
            xt = torch.from_numpy(x)[None]
            with torch.no_grad():
                t_torch = _time(lambda v: model(v), xt, args.repeats)
            t_f = _time(ort_float, x, args.repeats)
            t_q = _time(ort_int8, x, args.repeats)
            rows.append((seconds, t_torch, t_f, t_q))
        wav = tmp / "one.wav"
        sf.write(wav, (np.random.default_rng(1).standard_normal(32000) * 0.1).astype(np.float32), 16000)
        rss = _runner_rss(bundle, wav)
        sizes = {"float ONNX": float_onnx.stat().st_size, "int8 ONNX": (bundle / "model.onnx").stat().st_size,
                 "bundle .tar.gz": result.archive.stat().st_size}

    print(f"machine: {os.cpu_count()} cores, {sys.platform}, Python {sys.version.split()[0]}, 1 thread, "
          f"median of {args.repeats}")
    print(f"student: {student} ({manifest['student']['trainable']:,} trainable parameters)\n")
    print("| input | torch eager ms | ORT float ms | ORT int8 ms | int8 vs float | int8 vs torch |")
    print("|---|---|---|---|---|---|")
    for s, tt, tf, tq in rows:
        print(f"| {s} s | {tt:.2f} | {tf:.2f} | {tq:.2f} | {tf / tq:.2f}x | {tt / tq:.2f}x |")
    print("\n| artefact | bytes |\n|---|---|")
    for k, v in sizes.items():
        print(f"| {k} | {v:,} ({v / 1024:.1f} KiB) |")
    print(f"\nbundle runner peak RSS (one 2-s file): {rss:.1f} MiB")
    print(f"edgeser build --target rpi wall time: {build_s:.1f} s "
          f"({manifest['data']['files']} files, {manifest['data']['windows']} windows)")


if __name__ == "__main__":
    main()
