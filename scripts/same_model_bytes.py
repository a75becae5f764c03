"""Build the default rpi, android and coral bundles and compare the sha256 of each shipped model.

Each build is ``edgeser build --target T`` with the embedded default student, teacher and calibration set,
run in its own process from the working tree and, with ``--rev``, from another git revision checked out
with ``git worktree add`` into a temporary folder (same Python, ``PYTHONPATH`` pointing at that tree).
The table gives the shipped model's sha256 per target and source and whether they agree with each other
and with any ``--expect target=sha256``. Exit status 0 when everything compared agrees, 1 otherwise.

Usage (from the repository root)::

    python scripts/same_model_bytes.py --rev HEAD
    python scripts/same_model_bytes.py --targets rpi --expect rpi=fdeffcba...
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("rpi", "android", "coral")
MODEL_FILES = ("model.onnx", "model.tflite")
BUILD = "import sys; from edgeser.cli import app; sys.argv[0] = 'edgeser'; app()"


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(tree: Path, target: str, out: Path) -> tuple[str, float]:
    """Build the default bundle for ``target`` from the source tree ``tree``.

    Returns:
        The shipped model's sha256 (or ``failed (exit N): <last line>``) and the build time in seconds.
    """
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", BUILD, "build", "--target", target, "--out", str(out), "--quiet"],
                          cwd=tree, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    models = [out / name for name in MODEL_FILES if (out / name).is_file()]
    if proc.returncode or len(models) != 1:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1][:200]
        return f"failed (exit {proc.returncode}): {last}", seconds
    return sha256(models[0]), seconds


@contextlib.contextmanager
def worktree(rev: str, parent: Path) -> Iterator[Path]:
    """A detached checkout of ``rev`` under ``parent``, removed afterwards."""
    path = parent / "rev"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(path), rev], check=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False)


def _expectations(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        target, sep, digest = pair.partition("=")
        if not sep or target not in TARGETS or len(digest) != 64:
            raise SystemExit(f"--expect {pair}: want TARGET=SHA256 with TARGET one of {', '.join(TARGETS)}")
        out[target] = digest.lower()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="also build from this git revision (e.g. HEAD, main~3) and compare")
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated targets (default: all)")
    parser.add_argument("--expect", action="append", default=[], metavar="TARGET=SHA256",
                        help="the sha256 the shipped model must have (repeatable)")
    args = parser.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        raise SystemExit(f"--targets: unknown {', '.join(unknown)} (choose from {', '.join(TARGETS)})")
    expect = _expectations(args.expect)
    rows: list[tuple[str, str, str | None, float, float | None]] = []
    with tempfile.TemporaryDirectory(prefix="same-model-bytes-") as tmp, contextlib.ExitStack() as stack:
        other = stack.enter_context(worktree(args.rev, Path(tmp))) if args.rev else None
        for target in targets:
            here, t_here = build(ROOT, target, Path(tmp) / f"tree-{target}")
            there, t_there = build(other, target, Path(tmp) / f"rev-{target}") if other else (None, None)
            rows.append((target, here, there, t_here, t_there))
    ok = True
    head = ["target", "working tree", *([f"rev {args.rev}"] if args.rev else []), "same", "build s"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for target, here, there, t_here, t_there in rows:
        checks = []
        if there is not None:
            checks.append(here == there)
        if target in expect:
            checks.append(here == expect[target] and (there is None or there == expect[target]))
        same = all(checks) and len(here) == 64 if checks else None
        ok = ok and same is not False and len(here) == 64 and (there is None or len(there) == 64)
        verdict = {True: "yes", False: "NO", None: "-"}[same] + (" (= expected)" if target in expect and same else "")
        times = f"{t_here:.0f}" + (f" / {t_there:.0f}" if t_there is not None else "")
        print("| " + " | ".join([target, here, *([there] if args.rev else []), verdict, times]) + " |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
