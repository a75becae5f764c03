"""The device runner's command line, shared by every target's ``runner/__main__.py``.

    python -m runner FILE [FILE ...]        # A/D/V per file (mean over windows for long files)
    python -m runner --per-window FILE      # one line per window too
    python -m runner --json FILE ...        # JSON lines
    python -m runner --check                # check the bundle against its manifest and load the model
    python -m runner --self-test            # the build's held-out windows on this device: drift vs float
    python -m runner --mic [--device NAME] [--log FILE.csv]  # microphone, one JSON line per update
    python -m runner --mic --web [--host H] [--port P]       # and a live dashboard in the browser
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .engine import open_model
from .integrity import BundleError
from .pipes import quiet_when_stdout_closes

__all__ = ["main", "EXIT_BAD_INPUT", "EXIT_VERIFY"]

EXIT_BAD_INPUT = 2
EXIT_VERIFY = 6
"""The bundle does not match its manifest (the code ``edgeser verify`` uses)."""
MAX_THREADS = 256
EDGETPU_ENV = "EDGESER_EDGETPU"
"""``0`` keeps an Edge TPU bundle's runner on the CPU, like ``--cpu``."""


def _parser(edgetpu: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runner", description="Speech emotion (arousal, dominance, "
                                "valence) from audio files or the microphone, with the model in this bundle.")
    p.add_argument("files", nargs="*", type=Path, help="audio files (any format soundfile reads)")
    p.add_argument("--per-window", action="store_true", help="also print each window of long files")
    p.add_argument("--json", action="store_true", help="print one JSON object per file instead of a table")
    p.add_argument("--threads", type=_threads, default=None,
                   help=f"inference threads, 1 to {MAX_THREADS} (default: from the manifest)")
    p.add_argument("--mic", action="store_true", help="stream from the microphone instead of reading files")
    p.add_argument("--check", action="store_true",
                   help="check the bundle against manifest.json, load the model, and exit (0: ok, 6: changed)")
    p.add_argument("--self-test", action="store_true",
                   help="run the build's held-out windows through this device's engine and check the drift budget "
                   "against the float model (0: passed, 3: over the budget)")
    p.add_argument("--device", default=None, help="input device name or index for --mic")
    p.add_argument("--log", type=Path, default=None, help="with --mic: append every reading to this CSV")
    p.add_argument("--web", action="store_true", help="serve a live dashboard page (with --mic: of this device's "
                   "microphone; alone: of the page's own microphone); needs aiohttp")
    p.add_argument("--host", default="127.0.0.1", help="with --web: interface to bind (default 127.0.0.1; any "
                   "other needs the token printed in the URL)")
    p.add_argument("--port", type=int, default=8765, help="with --web: TCP port (default 8765)")
    if edgetpu:
        p.add_argument("--cpu", action="store_true", help="do not use the Edge TPU even when libedgetpu is installed")
        p.add_argument("--edgetpu-model", type=Path, default=None,
                       help="a model compiled by edgetpu_compiler from this bundle's model.tflite; the bundle is "
                       "checked as usual, but this file is not in its manifest (it was compiled after the build)")
    return p


def _threads(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_THREADS:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_THREADS}, got {value}")
    return value


def _compiled(path: Path, spec: Any, *, threads: int, edgetpu: bool) -> Any:
    """The Edge TPU compilation of a checked bundle's model, with the bundle's input spec and threads."""
    from .litert import load

    if not path.is_file():
        raise FileNotFoundError(f"{path}: compiled model not found")
    print(f"note: running {path}, compiled from the checked model; it is not covered by manifest.json",
          file=sys.stderr)
    return load(path, threads=threads, spec=spec, edgetpu=edgetpu)


def _self_test(runner: Any, bundle: Path) -> int:
    from .selftest import EXIT_SELFTEST_FAILED, run_selftest

    try:
        result = run_selftest(runner, bundle)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print("\n".join(result.lines()))
    return 0 if result.passed else EXIT_SELFTEST_FAILED


def _files(args: argparse.Namespace, runner: Any) -> int:
    from .predict import predict_file

    status = 0
    if not args.json:
        print(f"{'file':<40} {'arousal':>8} {'dominance':>9} {'valence':>8}")
    for path in args.files:
        try:
            pred = predict_file(runner, path)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = EXIT_BAD_INPUT
            continue
        a, d, v = (float(x) for x in pred.mean)
        if args.json:  # one JSON object per file; with --per-window, the windows inside it (as `edgeser predict`)
            entry: dict[str, Any] = {"file": str(path), "arousal": a, "dominance": d, "valence": v,
                                     "windows": len(pred.windows)}
            if args.per_window:
                entry["per_window"] = [{"start_s": round(float(s), 4), "arousal": float(w[0]),
                                        "dominance": float(w[1]), "valence": float(w[2])}
                                       for s, w in zip(pred.starts_s, pred.windows, strict=True)]
            print(json.dumps(entry))
        else:
            print(f"{str(path):<40} {a:8.3f} {d:9.3f} {v:8.3f}")
        if args.per_window and not args.json and len(pred.windows) > 1:
            for start, row in zip(pred.starts_s, pred.windows, strict=True):
                print(f"  @{start:7.2f}s {'':<28} {row[0]:8.3f} {row[1]:9.3f} {row[2]:8.3f}")
    return status


@quiet_when_stdout_closes  # `python -m runner ... | head -1`: exit 0, no traceback
def main(argv: list[str] | None = None, *, bundle: Path, edgetpu: bool = False) -> int:
    """Run the bundle at ``bundle`` on files or the microphone; returns the exit status."""
    args = _parser(edgetpu).parse_args(argv)
    tpu = edgetpu and not args.cpu and os.environ.get(EDGETPU_ENV, "1") != "0"
    try:
        runner = open_model(bundle, threads=args.threads, edgetpu=tpu)  # threads None: the manifest's
        if getattr(args, "edgetpu_model", None) is not None:
            runner = _compiled(args.edgetpu_model, runner.spec, threads=args.threads or 1, edgetpu=tpu)
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_VERIFY
    except (ImportError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.check:
        print(f"ok: {bundle}: files match manifest.json; model loaded ({runner.backend})")
        return 0
    if args.self_test:
        return _self_test(runner, bundle)
    if args.web:
        from .web import run_web_device

        return run_web_device(runner, mic=args.mic, device=args.device, log_path=args.log, host=args.host,
                              port=args.port, model_name=bundle.name)
    if args.mic:
        from .listen import run_device

        return run_device(runner, device=args.device, log_path=args.log)
    if not args.files:
        print("error: give audio files, or --mic", file=sys.stderr)
        return EXIT_BAD_INPUT
    return _files(args, runner)
