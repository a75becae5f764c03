"""Every TFLite variant beside the rpi ONNX int8: size, single-thread latency, peak RSS, CCC against float.

Builds the android (float32, float16, int8-dynamic, int8), coral (float32 body, full-int8) and rpi
(ONNX float, int8) models of one student with the exporters the build uses, then measures each model in
its own process (so peak RSS is that model's alone) with the device runtime (``edgeser.runtime``) on one
thread. CCC is against the float model of the same format, on held-out windows.

    python benchmarks/bench_tflite.py --student S.safetensors --audio list.csv --out bench.json

``--audio`` is a folder, a csv (file[,speaker]) or a txt list; files are cut into recipe windows, the
first half of the speakers (or files) calibrates, the rest is measured. Without ``--audio`` a synthetic
corpus is made (numbers then say little about speech). Needs edgeser[tflite].
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPEATS = 20
"""Timed runs per model (after one warm-up run); the median is reported."""
WORKER = "--worker"


def _windows(source: str | None, window_samples: int, tmp: Path) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, evaluation) windows split by speaker (or file)."""
    from edgeser import testing
    from edgeser.audio import list_audio, load, windows

    if source is None:
        source = str(testing.synth_corpus(tmp / "audio", speakers=4, clips=16, seconds=window_samples / 16_000))
    items = list_audio(source)
    groups = sorted({it.speaker or str(it.path) for it in items})
    held_out = set(groups[len(groups) // 2:])
    cal, ev = [], []
    for it in items:
        w = windows(load(it.path), window_samples)
        (ev if (it.speaker or str(it.path)) in held_out else cal).append(np.array(w))
    return np.concatenate(cal).astype(np.float32), np.concatenate(ev).astype(np.float32)


def _build(student: Path, cal: np.ndarray, out: Path, window_samples: int) -> list[tuple[str, str, Path, Path]]:
    """Export and quantise for android, coral and rpi; returns (target, variant, model, its float model)."""
    from edgeser import models
    from edgeser.export import exporter_for
    from edgeser.recipe import load_recipe
    from edgeser.runtime.engine import InputSpec

    model = models.load(student)
    rows = []
    for target in ("android", "coral", "rpi"):
        recipe = load_recipe(target, **{"data.window_seconds": window_samples / 16_000})
        exporter = exporter_for(recipe.export.format)
        folder = out / target
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ".onnx" if recipe.export.format == "onnx" else ".tflite"
        t = time.perf_counter()
        float_art = exporter.export(model, folder / f"model.float{suffix}", recipe=recipe,
                                    spec=InputSpec(window_samples=window_samples))
        variants = exporter.quantise(float_art, folder, cal[: recipe.data.calibration_windows], recipe=recipe,
                                     model=model)
        print(f"{target}: exported and quantised in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        rows += [(target, a.name, a.path, float_art.path) for a in (float_art, *variants)]
    return rows


def _worker(model: str, windows_path: str, out_path: str) -> None:
    """Child process: load one model on one thread, time it, run every window; save outputs and peak RSS."""
    from edgeser.runtime import open_model

    x = np.load(windows_path)
    runner = open_model(model, threads=1)
    runner(x[0])  # warm-up
    times = []
    for i in range(REPEATS):
        t = time.perf_counter()
        runner(x[i % len(x)])
        times.append(time.perf_counter() - t)
    outputs = np.stack([runner(w) for w in x])  # one window at a time, as a device runs it
    peak_kb = _vm_hwm_kb()
    np.savez(out_path, outputs=outputs, latency_ms=np.array(times) * 1e3, peak_rss_kb=peak_kb)


def _vm_hwm_kb() -> int:
    """This process's peak resident memory (VmHWM, KiB). Not ru_maxrss: on Linux that keeps the high-water
    mark of the parent's memory image across fork + exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _measure(model: Path, windows_path: Path, tmp: Path) -> dict[str, Any]:
    out = tmp / f"{model.parent.name}.{model.name}.npz"
    subprocess.run([sys.executable, __file__, WORKER, str(model), str(windows_path), str(out)], check=True)
    data = np.load(out)
    return {"outputs": data["outputs"], "latency_ms": float(np.median(data["latency_ms"])),
            "peak_rss_mb": float(data["peak_rss_kb"]) / 1024}


def _baseline_rss_mb() -> float:
    """Peak RSS of a process that imports the runtime and numpy but loads no model."""
    code = "import numpy, edgeser.runtime, edgeser.runtime.litert, edgeser.runtime.onnx, ai_edge_litert.interpreter"
    code += "\nfrom pathlib import Path\nprint([l.split()[1] for l in Path('/proc/self/status').read_text()" \
            ".splitlines() if l.startswith('VmHWM:')][0])"
    proc = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(proc.stdout.strip()) / 1024


def _table(rows: list[dict[str, Any]]) -> str:
    head = ("| target | variant | size (KB) | latency (ms, 1 thread) | peak RSS (MB) | CCC vs float A / D / V | "
            "finite |\n|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        c = " / ".join(f"{v:.3f}" for v in r["ccc_vs_float"])
        rss = f"{r['peak_rss_mb']:.0f}"
        lines.append(f"| {r['target']} | {r['variant']} | {r['size_kb']:.1f} | {r['latency_ms']:.2f} | {rss} | {c} | "
                     f"{'yes' if r['finite'] else 'NO'} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--student", type=Path, required=True, help="student checkpoint (.safetensors)")
    p.add_argument("--audio", default=None, help="folder, csv or txt list of audio files (default: synthetic)")
    p.add_argument("--window-seconds", type=float, default=2.0, help="model window (the recipes use 2.0)")
    p.add_argument("--max-eval-windows", type=int, default=200, help="cap on held-out windows")
    p.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = p.parse_args()
    from edgeser.metrics import ccc

    window = int(round(args.window_seconds * 16_000))
    with tempfile.TemporaryDirectory(prefix="edgeser-bench-") as d:
        tmp = Path(d)
        cal, ev = _windows(args.audio, window, tmp)
        ev = ev[: args.max_eval_windows]
        np.save(tmp / "eval.npy", ev)
        built = _build(args.student, cal, tmp / "models", window)
        measured = {path: _measure(path, tmp / "eval.npy", tmp) for _, _, path, _ in built}
        rows = []
        for target, variant, path, float_path in built:
            m, f = measured[path], measured[float_path]
            rows.append({"target": target, "variant": variant, "size_kb": path.stat().st_size / 1024,
                         "latency_ms": m["latency_ms"], "peak_rss_mb": m["peak_rss_mb"],
                         "finite": bool(np.isfinite(m["outputs"]).all()),
                         "ccc_vs_float": [float(c) for c in ccc(m["outputs"], f["outputs"])]})
    print(_table(rows))
    base = _baseline_rss_mb()
    print(f"\n{len(cal)} calibration / {len(ev)} held-out windows of {args.window_seconds:g} s; baseline RSS "
          f"(python + numpy + both runtimes imported, no model) {base:.0f} MB")
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "baseline_rss_mb": base, "calibration_windows": len(cal),
                                        "evaluation_windows": len(ev)}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == WORKER:
        _worker(*sys.argv[2:])
        sys.exit(0)
    sys.exit(main())
