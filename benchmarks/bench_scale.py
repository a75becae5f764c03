"""Labelling at scale: audio-hours per wall-clock hour, local engine against Ray, and the driver's memory.

Run by hand (not part of the tests; about 20 minutes on two cores)::

    python benchmarks/bench_scale.py                       # both teachers, the 1M-row manifest, the DDP rows
    python benchmarks/bench_scale.py --minutes 3 --rss-rows 1000000 --no-ddp
    python benchmarks/bench_scale.py --device cuda --precision bf16 --rss-rows 0 --no-ddp   # per-GPU figures

One run prints one markdown table. Two teachers: the embedded reference teacher, and a random-weight
transformers teacher with the layout of audEERING's wav2vec2 A/D/V model (12 layers, hidden size 1024,
built here, nothing downloaded). For each, ``--minutes`` of synthetic speech (2-s files, one 2-s window
each) is labelled from an empty cache by the local engine with 1 worker, Ray with 1 worker and Ray with
2 workers (one torch or onnxruntime thread per worker). Ray runs on one local instance started once (its
start-up time is a row of its own); each run still pays its own actor start-up (loading the teacher).

Each throughput is given twice: end to end (the call's wall time, what a user waits for) and steady state:
the slope of a straight line fitted to (time, files done) over the results that arrive while the second and
third quarters of the files finish, when every worker is running and none has run out of work. Start-up
(actors, teacher loading, the first result's latency) and the tail (the last worker finishing alone) stay
outside it. An untimed run on two files comes first, so that one-time costs (a fresh Ray worker importing
torch, files entering the page cache) do not fall on the measured run. Audio-hours per hour = seconds of
audio labelled per second of wall time.

Memory: the driver's peak RSS (``VmHWM`` of a child process) labelling manifests of ``--rss-rows``
rows (and a tenth of that) that point at four real files, with the local engine and with Ray: the
manifest is streamed, so the peak must not grow with it. The load average (1 min) after each run shows
how much else the machine was doing. When ``benchmarks/scale_ddp.py`` is present, its
distillation rows (windows per second, 1 against 2 DDP processes) are added.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeser import testing
from edgeser.audio import AudioItem
from edgeser.label import LabelConfig, label

SECONDS_PER_FILE = 2.0
HERE = Path(__file__).resolve().parent


class Clock:
    """A progress reporter that records when each result arrived (for the steady-state rate)."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, int]] = []

    def start(self, description: str, total: int | None = None, *, info: str = "") -> int:
        self.marks = []
        return 0

    def advance(self, task: int, amount: int = 1, *, info: str | None = None) -> None:
        done = self.marks[-1][1] if self.marks else 0
        self.marks.append((time.perf_counter(), done + amount))

    def note(self, task: int, info: str) -> None:
        pass

    def finish(self, task: int) -> None:
        pass

    def steady(self) -> float:
        """Files per second: the least-squares slope of files done against time over the middle half of the files."""
        total = self.marks[-1][1] if self.marks else 0
        middle = [(t, n) for t, n in self.marks if total / 4 <= n <= 3 * total / 4]
        if len(middle) < 3:
            return float("nan")
        t, n = np.array(middle).T
        return float(np.polyfit(t - t[0], n, 1)[0])


def corpus(folder: Path, minutes: float) -> list[AudioItem]:
    """Synthetic 2-s speech-like files, ``minutes`` of audio in all."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    items = []
    for i in range(int(round(minutes * 60 / SECONDS_PER_FILE))):
        path = folder / f"clip{i:05d}.flac"
        sf.write(path, testing.synth_clip(rng, seconds=SECONDS_PER_FILE), 16_000)
        items.append(AudioItem(path, f"s{i % 8}"))
    return items


def w2v2_teacher(folder: Path) -> Path:
    """A random-weight teacher with audEERING's wav2vec2-large-robust-12 A/D/V layout (safetensors + config)."""
    import torch
    from safetensors.torch import save_file

    from edgeser.teachers import w2v2

    config = {
        "model_type": "wav2vec2", "hidden_size": 1024, "num_hidden_layers": 12, "num_attention_heads": 16,
        "intermediate_size": 4096, "hidden_act": "gelu", "feat_extract_norm": "layer", "do_stable_layer_norm": True,
        "conv_dim": [512] * 7, "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_stride": [5, 2, 2, 2, 2, 2, 2],
        "conv_bias": True, "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16,
        "vocab_size": None, "id2label": {"0": "arousal", "1": "dominance", "2": "valence"},
    }
    torch.manual_seed(0)
    model = w2v2.build(config, {"classifier.out_proj.weight": torch.zeros(3, 1024)}, folder / "model.safetensors")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    return folder


def run(items: list[AudioItem], teacher: str, out: Path, **settings: Any) -> tuple[float, float]:
    """(end-to-end, steady-state) audio-hours per wall-clock hour of one run from an empty cache."""
    config = LabelConfig(window_seconds=SECONDS_PER_FILE, threads=1, **settings)
    label(items[:2], teacher, out.with_name(f"{out.stem}-warm-up{out.suffix}"), config=config)  # untimed
    clock = Clock()
    t0 = time.perf_counter()
    result = label(items, teacher, out, config=config, progress=clock)
    wall = time.perf_counter() - t0
    assert result.files == len(items) and result.cached_files == 0
    audio = len(items) * SECONDS_PER_FILE
    return audio / wall, clock.steady() * SECONDS_PER_FILE


RSS_CODE = """
import sys
from edgeser.label import LabelConfig, Manifest, label
engine = sys.argv[3]
config = LabelConfig(device="cpu", engine=engine)
label(Manifest.open(sys.argv[1]), "default", sys.argv[2], config=config)
# VmHWM: this process's peak resident set (ru_maxrss would carry the parent's over exec)
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))
"""


def driver_rss(folder: Path, files: list[AudioItem], rows: int, engine: str) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of a process labelling a ``rows``-row manifest of ``files`` from a fresh cache."""
    manifest = folder / f"manifest-{rows}.csv"
    if not manifest.exists():
        with manifest.open("w", encoding="utf-8") as fh:
            fh.write("file,speaker\n")
            names = [f"{it.path},{it.speaker}\n" for it in files]
            for i in range(rows):
                fh.write(names[i % len(names)])
    out = folder / f"labels-{rows}-{engine}.csv"
    for stale in (out, out.with_name(out.name + ".cache.sqlite")):
        stale.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RSS_CODE, str(manifest), str(out), engine], capture_output=True,
                          text=True, check=True)
    return int(proc.stdout.strip().splitlines()[-1]) / 1024, time.perf_counter() - t0


def ddp_rows() -> list[tuple[str, float]] | None:
    """The distillation rows of ``benchmarks/scale_ddp.py``, or None when it is not there."""
    path = HERE / "scale_ddp.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("scale_ddp", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return list(module.ddp_rows())


def versions() -> str:
    import onnxruntime
    import ray
    import torch
    import transformers

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    return (f"{datetime.date.today()}, {cpu}, {len(os.sched_getaffinity(0))} cores; Python "
            f"{platform.python_version()}, ray {ray.__version__}, torch {torch.__version__}, onnxruntime "
            f"{onnxruntime.__version__}, transformers {transformers.__version__}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="audio per run for the w2v2-layout teacher")
    p.add_argument("--reference-minutes", type=float, default=30.0, help="audio per run for the embedded teacher")
    p.add_argument("--rss-rows", type=int, default=1_000_000, help="rows of the large manifest (0: skip)")
    p.add_argument("--no-ddp", action="store_true", help="leave out the distillation rows")
    p.add_argument("--device", default="cpu", help="cpu, or cuda for per-GPU figures (each Ray worker takes a GPU)")
    p.add_argument("--precision", default="fp32", help="fp32, or bf16/fp16 on CUDA (the w2v2-layout teacher)")
    args = p.parse_args(argv)
    on_gpu = args.device.startswith("cuda")

    import ray
    import torch

    torch.set_num_threads(1)
    lines = ["| teacher | run | audio-h per h (end to end) | audio-h per h (steady) | load average |",
             "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        root = Path(tmp)
        teachers = {"embedded (reference ONNX)": ("default", args.reference_minutes),
                    "w2v2 layout (12 x 1024, random)": (str(w2v2_teacher(root / "w2v2")), args.minutes)}
        corpora = {name: corpus(root / f"audio-{minutes:g}", minutes) for name, (_, minutes) in teachers.items()}
        gpus = {"gpus_per_worker": 1.0} if on_gpu else {}
        runs = (("local, 1 worker", {"workers": 1}),  # first, in a process without Ray
                ("Ray, 1 worker", {"engine": "ray", "workers": 1, **gpus}),
                ("Ray, 2 workers", {"engine": "ray", "workers": 2, **gpus}))
        results: dict[tuple[str, str], tuple[float, float, float]] = {}
        startup = float("nan")
        for run_name, settings in runs:
            if settings.get("engine") == "ray" and not ray.is_initialized():
                t0 = time.perf_counter()
                ray.init(address="local", num_cpus=len(os.sched_getaffinity(0)), include_dashboard=False,
                         log_to_driver=False, logging_level="ERROR")
                startup = time.perf_counter() - t0
            for name, (spec, _) in teachers.items():
                place = {"device": args.device, "precision": args.precision if spec != "default" else "fp32"}
                out = root / f"{len(results)}.csv"
                end, rate = run(corpora[name], spec, out, **settings, **place)
                results[(name, run_name)] = (end, rate, os.getloadavg()[0])
                print(f"{name} | {run_name} | {end:.1f} | {rate:.1f}", file=sys.stderr, flush=True)
        ray.shutdown()
        for name in teachers:
            for run_name, _ in runs:
                end, rate, load = results[(name, run_name)]
                lines.append(f"| {name} | {run_name} | {end:,.1f} | {rate:,.1f} | {load:.1f} |")
        steady = {key: value[1] for key, value in results.items()}
        w2v2 = "w2v2 layout (12 x 1024, random)"
        ratio = steady[(w2v2, "Ray, 2 workers")] / steady[(w2v2, "Ray, 1 worker")]
        parity = steady[(w2v2, "Ray, 1 worker")] / steady[(w2v2, "local, 1 worker")]
        extra = [f"| Ray start-up (local instance, {len(os.sched_getaffinity(0))} CPUs) | | {startup:.1f} s | | |",
                 f"| w2v2 layout: Ray 2 workers / Ray 1 worker (steady) | | | {ratio:.2f}x (target >= 1.8x) | |",
                 f"| w2v2 layout: Ray 1 worker / local 1 worker (steady) | | | {parity:.2f} (target 0.9-1.1) | |"]
        if args.rss_rows:
            few = corpus(root / "rss-audio", 4 * SECONDS_PER_FILE / 60)
            for engine in ("local", "ray"):
                for rows in (args.rss_rows // 10, args.rss_rows):
                    mib, secs = driver_rss(root, few, rows, engine)
                    extra.append(f"| driver peak RSS, {rows:,}-row manifest, {engine} engine | | {mib:,.0f} MiB "
                                 f"({secs:.0f} s) | | |")
                    print(extra[-1], file=sys.stderr, flush=True)
        rows = None if args.no_ddp else ddp_rows()
        if rows is None:
            extra.append("| distillation, DDP | | (benchmarks/scale_ddp.py not run) | | |")
        else:
            extra += [f"| distillation: {name} | | {value:,.1f} windows/s | | |" for name, value in rows]
        cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none here"
        extra.append(f"| CUDA | | {cuda} | | |")
    print(f"Measured {versions()}\n")
    print("\n".join(lines + extra))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
