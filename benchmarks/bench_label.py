"""Clips per second of ``edgeser label`` with the reference teacher, for 1 and 2 workers (processes, threads).

Run by hand (not part of the tests)::

    python benchmarks/bench_label.py                      # the built-in calibration set (124 EmoDB clips)
    python benchmarks/bench_label.py --audio DIR --teacher model.onnx --workers 1 2 4 --repeat 3

Every run starts from an empty cache, so the teacher labels every window. The time includes reading,
resampling, hashing and writing the CSV: what a user waits for. Each worker uses ``--threads`` intra-op
threads; with 2 or more workers both kinds of worker are timed (``--parallel``): processes pay a
start-up (each loads Python, the engine and the teacher), threads share one teacher. Prints a markdown
table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from edgeser.audio import list_audio
from edgeser.defaults import calibration_list_path
from edgeser.label import LabelConfig, label


def run_once(items: list, teacher: str, workers: int, threads: int, batch: int, parallel: str) -> tuple[float, int]:
    """Seconds for one labelling run from an empty cache, and the windows labelled."""
    with tempfile.TemporaryDirectory() as tmp:
        config = LabelConfig(window_seconds=2.0, batch_size=batch, workers=workers, threads=threads, parallel=parallel)
        t0 = time.perf_counter()
        result = label(items, teacher, Path(tmp) / "labels.csv", config=config)
        return time.perf_counter() - t0, result.rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--audio", type=Path, help="folder or list file (default: the built-in calibration set)")
    p.add_argument("--teacher", default="default", help="teacher spec (default: the reference teacher)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per worker")
    p.add_argument("--parallel", nargs="+", default=["process", "thread"], help="worker kinds to compare")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeat", type=int, default=3, help="runs per setting; the fastest is reported")
    args = p.parse_args(argv)
    items = list_audio(args.audio or calibration_list_path())
    print(
        f"{len(items)} clips, teacher {args.teacher}, {platform.machine()}, {os.cpu_count()} CPU(s), "
        f"threads per worker {args.threads}, batch {args.batch_size}, best of {args.repeat}\n"
    )
    print("| workers | parallel | seconds | clips/s | windows/s |")
    print("|--------:|----------|--------:|--------:|----------:|")
    for workers in args.workers:
        for parallel in args.parallel if workers > 1 else ["-"]:
            best, rows = min(
                run_once(items, args.teacher, workers, args.threads, args.batch_size, parallel.replace("-", "thread"))
                for _ in range(args.repeat)
            )
            print(f"| {workers} | {parallel} | {best:.2f} | {len(items) / best:.1f} | {rows / best:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
