"""Device entry point. Run from the bundle folder:

    python -m runner FILE [FILE ...]        # A/D/V per file (mean over windows for long files)
    python -m runner --per-window FILE      # one line per window too
    python -m runner --mic [--device NAME]  # stream from the microphone, one JSON line per update

Needs numpy, onnxruntime (or ai-edge-litert for TFLite bundles) and soundfile; sounddevice for --mic.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BUNDLE = Path(__file__).resolve().parent.parent
EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runner", description="Speech emotion (arousal, dominance, valence) "
                                "from audio files or the microphone, with the model in this bundle.")
    p.add_argument("files", nargs="*", type=Path, help="audio files (any format soundfile reads)")
    p.add_argument("--per-window", action="store_true", help="also print each window of long files")
    p.add_argument("--json", action="store_true", help="print one JSON object per file instead of a table")
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: from the manifest)")
    p.add_argument("--mic", action="store_true", help="stream from the microphone instead of reading files")
    p.add_argument("--device", default=None, help="input device name or index for --mic")
    return p


def _files(args: argparse.Namespace, runner: object) -> int:
    from .edgeser_runtime.audiofile import read
    from .edgeser_runtime.predict import predict_signal

    spec = runner.spec  # type: ignore[attr-defined]
    status = 0
    if not args.json:
        print(f"{'file':<40} {'arousal':>8} {'dominance':>9} {'valence':>8}")
    for path in args.files:
        try:
            pred = predict_signal(runner, read(path, spec.sampling_rate))  # type: ignore[arg-type]
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = EXIT_BAD_INPUT
            continue
        a, d, v = (float(x) for x in pred.mean)
        if args.json:
            print(json.dumps({"file": str(path), "arousal": a, "dominance": d, "valence": v,
                              "windows": len(pred.windows)}))
        else:
            print(f"{str(path):<40} {a:8.3f} {d:9.3f} {v:8.3f}")
        if args.per_window and len(pred.windows) > 1:
            for start, row in zip(pred.starts_s, pred.windows, strict=True):
                print(f"  @{start:7.2f}s {'':<28} {row[0]:8.3f} {row[1]:9.3f} {row[2]:8.3f}")
    return status


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .edgeser_runtime import open_model

    manifest = json.loads((BUNDLE / "manifest.json").read_text(encoding="utf-8"))
    threads = args.threads or int(manifest["runtime"].get("threads", 1))
    try:
        runner = open_model(BUNDLE, threads=threads)
    except (ImportError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.mic:
        from .edgeser_runtime.listen import run_device

        return run_device(runner, device=args.device)
    if not args.files:
        print("error: give audio files, or --mic", file=sys.stderr)
        return EXIT_BAD_INPUT
    return _files(args, runner)


if __name__ == "__main__":
    sys.exit(main())
