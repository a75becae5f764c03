"""Bundles: a folder plus its ``.tar.gz``, with a manifest holding the sha256 of every file; and verification."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import InputError, OutputError, VerifyError
from .fileio import DIR_MODE, replacing
from .resources import package_dir, targets_dir

__all__ = ["FORMAT", "staging_dir", "assemble", "write_manifest", "archive", "verify", "sha256_file", "commit_dir"]

FORMAT = "edgeser.bundle/1"
MANIFEST = "manifest.json"
RUNTIME_PACKAGE = "edgeser_runtime"
IGNORED_PARTS = ("__pycache__",)
IGNORED_SUFFIXES = (".pyc",)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _ignored(rel: Path) -> bool:
    return any(p in IGNORED_PARTS for p in rel.parts) or rel.suffix in IGNORED_SUFFIXES


def _files(folder: Path) -> list[Path]:
    return sorted(p.relative_to(folder) for p in folder.rglob("*")
                  if p.is_file() and not _ignored(p.relative_to(folder)))


@contextmanager
def staging_dir(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out``; removed on failure, left for :func:`commit_dir` on success."""
    out = Path(out)
    if out.exists():
        raise OutputError("output exists already (choose another --out or remove it)", path=out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise OutputError(f"cannot write here ({exc.strerror})", path=out) from None
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if tmp.exists():  # not committed: discard
        shutil.rmtree(tmp, ignore_errors=True)


def commit_dir(tmp: Path, out: Path) -> None:
    """Rename a finished staging folder to its final name."""
    try:
        os.chmod(tmp, DIR_MODE)  # mkdtemp made it private to its owner
        os.replace(tmp, out)
    except OSError as exc:
        raise OutputError(f"cannot move the finished output into place ({exc.strerror})", path=out) from None


def assemble(folder: Path, *, target: str) -> None:
    """Copy ``targets/<target>/`` and ``edgeser/runtime`` (as ``runner/edgeser_runtime``) into ``folder``."""
    src = targets_dir() / target
    if not src.is_dir():
        raise InputError(f"no runner files for target '{target}'", path=src)
    shutil.copytree(src, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    runtime = package_dir() / "runtime"
    shutil.copytree(runtime, folder / "runner" / RUNTIME_PACKAGE,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for script in folder.glob("*.sh"):
        script.chmod(0o755)


def write_manifest(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Add the sha256 of every file in ``folder`` and write ``manifest.json``."""
    files = {str(rel): sha256_file(folder / rel) for rel in _files(folder) if str(rel) != MANIFEST}
    manifest = {"format": FORMAT, **manifest, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return manifest


def archive(folder: Path, dest: Path, *, arcname: str) -> Path:
    """Write ``folder`` as a .tar.gz at ``dest`` (via a temporary file), rooted at ``arcname``."""
    if dest.exists():
        raise OutputError("archive exists already", path=dest)
    with replacing(dest) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for rel in _files(folder):
            tar.add(folder / rel, arcname=f"{arcname}/{rel}")
    return dest


def _extract(archive_path: Path, into: Path) -> Path:
    try:
        with tarfile.open(archive_path, "r:gz") as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise VerifyError(f"cannot read bundle archive ({exc})", path=archive_path) from None
    roots = [p for p in into.iterdir() if p.is_dir()]
    if len(roots) != 1:
        raise VerifyError("archive does not hold exactly one bundle folder", path=archive_path)
    return roots[0]


def _check(folder: Path) -> tuple[dict[str, Any], list[str]]:
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise VerifyError("not a bundle: manifest.json is missing", path=folder)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        expected: dict[str, str] = manifest["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise VerifyError(f"manifest.json is corrupt ({exc})", path=folder) from None
    present = {str(p) for p in _files(folder)} - {MANIFEST}
    missing = sorted(set(expected) - present)
    changed = sorted(f for f in set(expected) & present if sha256_file(folder / f) != expected[f])
    extra = sorted(present - set(expected))
    problems = [f"{kind}: {', '.join(names)}" for kind, names in
                (("changed", changed), ("missing", missing), ("unexpected", extra)) if names]
    return manifest, problems


def verify(path: str | Path) -> dict[str, Any]:
    """Re-hash every file of a bundle folder or ``.tar.gz`` against its manifest.

    Returns:
        the manifest, when everything matches.

    Raises:
        VerifyError: naming every changed, missing and unexpected file.
    """
    path = Path(path)
    if not path.exists():
        raise VerifyError("bundle not found", path=path)
    if path.is_file():
        with tempfile.TemporaryDirectory(prefix="edgeser-verify-") as tmp:
            manifest, problems = _check(_extract(path, Path(tmp)))
    else:
        manifest, problems = _check(path)
    if problems:
        raise VerifyError("bundle does not match its manifest: " + "; ".join(problems), path=path)
    return manifest
