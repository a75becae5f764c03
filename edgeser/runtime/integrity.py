"""Bundle integrity, the same on the device and the host: the manifest, the files it lists, the model it names.

A bundle is trusted only as far as its ``manifest.json`` vouches for it. :func:`check_bundle` is what
``edgeser verify`` runs, and :func:`open_bundle_model` is what every runner (and ``edgeser predict`` on a
bundle) runs before it loads a model, so the model that runs is the model that was measured:

- the manifest is valid JSON with the expected fields, and its redundant fields agree with each other
  (the model's hash with the file list, the backend with the model's bytes);
- every listed file is present, a regular file (not a symlink) inside the bundle, with its sha256;
- nothing is present that the manifest does not list (``strict``: anywhere; otherwise: under ``runner/``,
  where code lives, so a device may keep its virtualenv and logs beside the bundle's files).

An unsigned manifest can be rewritten together with the files it hashes; docs/security.md says what this
does and does not guarantee. Standard library only (this module is copied into every bundle).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["BundleError", "FORMAT", "MANIFEST", "CODE_DIR", "PYCACHE_BLOCKER", "sha256_file", "read_manifest",
           "manifest_problems", "scan", "check_bundle", "open_bundle_model", "safe_relative"]

FORMAT = "edgeser.bundle/1"
"""Manifest format this runtime reads."""
MANIFEST = "manifest.json"
CODE_DIR = "runner"
"""Folder of the bundle that holds code: nothing unlisted may appear under it, even on a device."""
PYCACHE_BLOCKER = "__pycache__"
"""A plain file of this name in every code folder, so Python can neither write nor read bytecode there."""
_SHA256 = re.compile(r"[0-9a-f]{64}")
_BACKEND_MAGIC = {"litert": b"TFL3"}


class BundleError(ValueError):
    """A bundle that does not match its manifest; ``problems`` lists each finding."""

    def __init__(self, folder: Path, problems: list[str]) -> None:
        self.folder = Path(folder)
        self.problems = problems
        super().__init__(f"{folder}: bundle does not match its manifest: " + "; ".join(problems))


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def safe_relative(name: object) -> bool:
    """True for a relative POSIX path that stays inside its folder (no ``..``, no absolute or empty parts)."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        return False
    p = PurePosixPath(name)
    return not p.is_absolute() and all(part not in ("", ".", "..") for part in p.parts) and str(p) == name


def read_manifest(folder: Path) -> dict[str, Any]:
    """The parsed ``manifest.json`` of ``folder``.

    Raises:
        BundleError: missing, not a regular file, unreadable, not JSON, or not a JSON object.
    """
    path = Path(folder) / MANIFEST
    if path.is_symlink() or not path.is_file():
        raise BundleError(folder, [f"not a bundle: {MANIFEST} is missing" if not path.exists()
                                   else f"{MANIFEST} is not a regular file"])
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad UTF-8, JSON, or a 5000-digit number
        raise BundleError(folder, [f"{MANIFEST} is corrupt ({exc})"]) from None
    if not isinstance(manifest, dict):
        raise BundleError(folder, [f"{MANIFEST} is corrupt (not a JSON object)"])
    return manifest


def _field(manifest: dict[str, Any], dotted: str, kind: type | tuple[type, ...]) -> Any:
    node: Any = manifest
    for key in dotted.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, kind) and not isinstance(node, bool) else None


def manifest_problems(manifest: dict[str, Any]) -> list[str]:
    """What is wrong with a manifest's content, without looking at any file."""
    problems: list[str] = []
    if manifest.get("format") != FORMAT:
        problems.append(f"manifest format is {manifest.get('format')!r}, expected {FORMAT!r}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return [*problems, "manifest has no 'files' table"]
    bad = sorted(_shown(k) for k, v in files.items() if not safe_relative(k) or not isinstance(v, str)
                 or not _SHA256.fullmatch(v) or k == MANIFEST)
    if bad:
        problems.append(f"manifest lists invalid file entries: {', '.join(bad[:5])}")
    model = _field(manifest, "model.file", str)
    if model is None or not safe_relative(model):
        problems.append(f"manifest's model.file {_field(manifest, 'model.file', object)!r} is not a file "
                        "name inside the bundle")
    elif model not in files:
        problems.append(f"manifest's model.file {model!r} is not among its files")
    elif _field(manifest, "model.sha256", str) != files[model]:
        problems.append("manifest's model.sha256 differs from the hash listed for the model file")
    backend = _field(manifest, "runtime.backend", str)
    if backend not in ("onnx", "litert"):
        problems.append(f"manifest's runtime.backend {backend!r} is not onnx or litert")
    threads = _field(manifest, "runtime.threads", int)
    if threads is None or threads < 1:
        problems.append("manifest's runtime.threads is not a positive integer")
    if not isinstance(manifest.get("input"), dict):
        problems.append("manifest has no 'input' table")
    return problems


def _shown(name: str) -> str:
    """A file name as a message shows it: quoted and escaped when it holds a line break or other control."""
    return name if name.isprintable() else ascii(name)


def scan(folder: Path, folders: set[str] | None = None) -> tuple[set[str], dict[str, str]]:
    """Regular files under ``folder`` (relative POSIX names), and everything else found there with its kind.

    Symbolic links (to files or folders, broken or looping) are never followed; they, and anything that
    is neither a regular file nor a folder, are returned as ``{name: "symlink" | "special file"}``. The
    folders found are added to ``folders`` when it is given.
    """
    files: set[str] = set()
    odd: dict[str, str] = {}
    for root, dirs, names in os.walk(folder, followlinks=False):
        base = Path(root)
        for name in [*dirs, *names]:
            rel = (base / name).relative_to(folder).as_posix()
            mode = os.lstat(base / name).st_mode
            if stat.S_ISLNK(mode):
                odd[rel] = "symlink"
            elif stat.S_ISREG(mode):
                files.add(rel)
            elif not stat.S_ISDIR(mode):
                odd[rel] = "special file"
            elif folders is not None:
                folders.add(rel)
        dirs[:] = [d for d in dirs if not (base / d).is_symlink()]
    return files, odd


def check_bundle(folder: str | Path, *, strict: bool = True) -> tuple[dict[str, Any], list[str]]:
    """The manifest and every problem found in the bundle at ``folder``.

    Args:
        folder: the bundle folder.
        strict: report every unlisted file (``edgeser verify``); otherwise only those under ``runner/``.

    Raises:
        BundleError: no readable manifest (nothing else can be checked).
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    problems = manifest_problems(manifest)
    listed: dict[str, str] = {k: v for k, v in manifest.get("files", {}).items()
                              if safe_relative(k)} if isinstance(manifest.get("files"), dict) else {}
    folders: set[str] = set()
    present, odd = scan(folder, folders)
    present.discard(MANIFEST)

    def watched(name: str) -> bool:  # where an unlisted entry is a problem
        return strict or name in listed or name.split("/")[0] == CODE_DIR

    holding = {name.rsplit("/", 1)[0] for name in (*present, *odd, *listed, *folders) if "/" in name}
    empty = [f"{name}/" for name in folders - holding if watched(name)]  # folders with nothing listed in them
    unexpected = sorted([*(f for f in present - set(listed) if watched(f)), *empty])
    missing = sorted(set(listed) - present - set(odd))
    changed = sorted(f for f in set(listed) & present if sha256_file(folder / f) != listed[f])
    not_regular = sorted(f"{name} ({kind})" for name, kind in odd.items() if watched(name))
    for kind, names in (("changed", changed), ("missing", missing), ("unexpected", unexpected),
                        ("not a regular file", not_regular)):
        if names:
            problems.append(f"{kind}: {', '.join(map(_shown, names))}")
    if not problems:
        problems += _backend_problems(folder / manifest["model"]["file"], manifest["runtime"]["backend"])
    return manifest, problems


def _backend_problems(model: Path, backend: str) -> list[str]:
    with open(model, "rb") as fh:
        head = fh.read(8)
    is_tflite = head[4:8] == _BACKEND_MAGIC["litert"]
    if is_tflite != (backend == "litert"):
        return [f"manifest's runtime.backend {backend!r} does not match the model file "
                f"({'a TFLite flatbuffer' if is_tflite else 'not a TFLite flatbuffer'})"]
    return []


def open_bundle_model(folder: str | Path) -> tuple[Path, dict[str, Any]]:
    """The checked model file of a bundle and its manifest: what a runner loads.

    Checks the bundle as :func:`check_bundle` does with ``strict=False`` (listed files and hashes, the
    manifest's content, nothing unlisted under ``runner/``).

    Raises:
        BundleError: naming every problem found.
    """
    folder = Path(folder)
    manifest, problems = check_bundle(folder, strict=False)
    if problems:
        raise BundleError(folder, problems)
    return folder / manifest["model"]["file"], manifest
