"""Bundles: a folder plus its ``.tar.gz``, with a manifest holding the sha256 of every file; and verification."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import InputError, OutputError, VerifyError
from .fileio import DIR_MODE, replacing
from .resources import package_dir, targets_dir
from .runtime.integrity import (
    CODE_DIR,
    FORMAT,
    MANIFEST,
    PYCACHE_BLOCKER,
    BundleError,
    check_bundle,
    safe_relative,
    scan,
    sha256_file,
)

__all__ = ["FORMAT", "staging_dir", "assemble", "write_manifest", "archive", "verify", "sha256_file", "commit_dir",
           "replace_outputs"]

RUNTIME_PACKAGE = "edgeser_runtime"
MAX_ARCHIVE_BYTES = 256 * 1024 * 1024
"""Largest total size of the files a bundle archive may unpack to (a bundle is well under 10 MiB)."""
MAX_ARCHIVE_MEMBERS = 10_000
"""Most entries a bundle archive may hold."""
PYCACHE_NOTE = ("This file stands where Python would write its bytecode cache, so that the runner never\n"
                "writes or reads compiled code inside the bundle: what runs is the source that the manifest\n"
                "hashes. Do not remove it (edgeser verify and the runner check it).\n")


def _files(folder: Path) -> list[str]:
    """Every regular file of a folder being assembled; a symlink or special file there is a bug."""
    files, odd = scan(folder)
    if odd:
        raise OutputError(f"bundle folder holds entries that are not regular files: {', '.join(sorted(odd))}",
                          path=folder)
    return sorted(files)


@contextmanager
def staging_dir(out: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``out``; removed on failure, left for :func:`commit_dir` on success.

    Args:
        out: the final output folder.
        overwrite: allow ``out`` to exist already (it is replaced only when the output is committed).

    Raises:
        OutputError: ``out`` exists and ``overwrite`` is false, or the folder cannot be created.
    """
    out = Path(out)
    if out.exists() and not overwrite:
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
    """Rename a finished staging folder to its final name (which must not exist)."""
    replace_outputs([(tmp, out)])


def replace_outputs(pairs: list[tuple[Path, Path]]) -> None:
    """Move finished outputs (folders or files) onto their final paths, replacing what is there.

    Every previous output is first renamed aside, then every new one moved in, then the old ones removed:
    until the new outputs are all in place, the old ones can be (and on failure are) put back.

    Raises:
        OutputError: a move failed (the previous outputs are restored).
    """
    aside: list[tuple[Path, Path]] = []
    placed: list[tuple[Path, Path]] = []
    current = pairs[0][1] if pairs else Path(".")
    try:
        for _, current in pairs:
            if current.exists() or current.is_symlink():
                backup = current.with_name(f".{current.name}.old-{os.getpid()}")
                os.replace(current, backup)
                aside.append((backup, current))
        for new, current in pairs:
            if new.is_dir():
                os.chmod(new, DIR_MODE)  # mkdtemp made it private to its owner
            os.replace(new, current)
            placed.append((new, current))
    except OSError as exc:
        for new, dest in placed:  # back where they came from, for their owner to clean up
            os.replace(dest, new)
        for backup, dest in aside:
            os.replace(backup, dest)
        raise OutputError(f"cannot move the finished output into place ({exc.strerror})", path=current) from None
    for backup, _ in aside:
        _remove(backup)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def assemble(folder: Path, *, target: str) -> None:
    """Copy ``targets/<target>/`` and ``edgeser/runtime`` (as ``runner/edgeser_runtime``) into ``folder``.

    Every code folder gets a plain file named ``__pycache__`` (:data:`PYCACHE_NOTE`), so that Python can
    neither write a bytecode cache into the bundle nor load one planted there.
    """
    src = targets_dir() / target
    if not src.is_dir():
        raise InputError(f"no runner files for target '{target}'", path=src)
    no_caches = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")
    shutil.copytree(src, folder, dirs_exist_ok=True, ignore=no_caches)
    shutil.copytree(package_dir() / "runtime", folder / CODE_DIR / RUNTIME_PACKAGE, ignore=no_caches)
    for package in {p.parent for p in (folder / CODE_DIR).rglob("*.py")}:
        (package / PYCACHE_BLOCKER).write_text(PYCACHE_NOTE, encoding="utf-8")
    for script in folder.glob("*.sh"):
        script.chmod(0o755)


def write_manifest(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Add the sha256 of every file in ``folder`` and write ``manifest.json``."""
    files = {rel: sha256_file(folder / rel) for rel in _files(folder) if rel != MANIFEST}
    manifest = {"format": FORMAT, **manifest, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return manifest


def archive(folder: Path, dest: Path, *, arcname: str, overwrite: bool = False) -> Path:
    """Write ``folder`` as a .tar.gz at ``dest`` (via a temporary file), rooted at ``arcname``."""
    if dest.exists() and not overwrite:
        raise OutputError("archive exists already", path=dest)
    with replacing(dest) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for rel in _files(folder):
            tar.add(folder / rel, arcname=f"{arcname}/{rel}", recursive=False)
    return dest


def _members(tar: tarfile.TarFile, archive_path: Path) -> list[tarfile.TarInfo]:
    """The archive's entries, refused past the size caps or when any is not a plain file or folder."""
    members, total = [], 0
    for info in tar:
        members.append(info)
        total += max(info.size, 0)
        if len(members) > MAX_ARCHIVE_MEMBERS or total > MAX_ARCHIVE_BYTES:
            raise VerifyError(f"archive is larger than a bundle can be (over {MAX_ARCHIVE_MEMBERS} entries or "
                              f"{MAX_ARCHIVE_BYTES >> 20} MiB unpacked)", path=archive_path)
        if not (info.isreg() or info.isdir()):
            raise VerifyError(f"archive entry {info.name!r} is a link or special file", path=archive_path)
        if not safe_relative(info.name):  # tarfile strips a folder's trailing "/"; a file's is refused
            raise VerifyError(f"archive entry {info.name!r} points outside the bundle", path=archive_path)
    return members


def _extract(archive_path: Path, into: Path) -> Path:
    """Unpack a bundle archive into ``into``, writing only plain files and folders inside it."""
    try:
        with tarfile.open(archive_path, "r:gz") as tar:
            members = _members(tar, archive_path)
            roots = {m.name.split("/")[0] for m in members}
            if len(roots) != 1 or any(m.name == next(iter(roots)) and not m.isdir() for m in members):
                raise VerifyError("archive does not hold exactly one bundle folder", path=archive_path)
            for m in members:
                target = into / m.name
                if into.resolve() not in target.resolve().parents:  # _members refused these; never write there
                    raise VerifyError(f"archive entry {m.name!r} points outside the bundle", path=archive_path)
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                if src is None or target.exists():
                    raise VerifyError(f"archive entry {m.name!r} is unreadable or repeated", path=archive_path)
                with src, open(target, "xb") as dst:
                    shutil.copyfileobj(src, dst)
    except (tarfile.TarError, OSError, EOFError, ValueError, zlib.error) as exc:  # zlib: corrupt deflate data
        raise VerifyError(f"cannot read bundle archive ({exc})", path=archive_path) from None
    return into / next(iter(roots))


def _host_problems(manifest: dict[str, Any]) -> list[str]:
    """Checks only the host can make: the target is one edgeser knows, and the recipe agrees with it."""
    from .recipe import list_targets

    def table(node: Any, key: str) -> dict[str, Any]:
        return node[key] if isinstance(node.get(key), dict) else {}

    recipe, model, runtime = table(manifest, "recipe"), table(manifest, "model"), table(manifest, "runtime")
    target = manifest.get("target")
    problems = []
    if target not in list_targets():
        problems.append(f"manifest's target {target!r} is not one of {', '.join(list_targets())}")
    elif recipe.get("target") != target:
        problems.append(f"manifest's target {target!r} differs from its recipe's {recipe.get('target')!r}")
    if table(recipe, "runtime").get("backend") != runtime.get("backend"):
        problems.append("manifest's runtime.backend differs from its recipe's")
    drift = table(manifest, "drift")
    if drift.get("shipped_passed") is not True:
        problems.append("manifest does not record a passed drift gate for the shipped model")
    if drift.get("shipped_variant") != model.get("variant"):
        problems.append("manifest's model.variant differs from the variant its drift gate passed")
    return problems


def _check(folder: Path, shown: Path) -> tuple[dict[str, Any], list[str]]:
    """Every problem of the bundle at ``folder``; an unreadable manifest is reported on ``shown``."""
    try:
        manifest, problems = check_bundle(folder, strict=True)
    except BundleError as exc:
        raise VerifyError("; ".join(exc.problems), path=shown) from None
    return manifest, _host_problems(manifest) + problems


def verify(path: str | Path) -> dict[str, Any]:
    """Check a bundle folder or ``.tar.gz`` against its manifest: every byte, and nothing more.

    What passes: a manifest whose content is consistent (format, target and recipe, model file, hash,
    backend and drift verdict agree); every listed file present as a regular file with its sha256; no
    unlisted file, cache, symlink or special file anywhere. Archives are unpacked into a private
    temporary folder with size caps, plain files and folders only. See docs/security.md.

    Returns:
        the manifest, when everything matches.

    Raises:
        VerifyError: naming every problem.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise VerifyError("bundle not found", path=path)
    if path.is_symlink():
        raise VerifyError("bundle is a symbolic link; verify the folder or archive itself", path=path)
    if path.is_file():
        with tempfile.TemporaryDirectory(prefix="edgeser-verify-") as tmp:
            manifest, problems = _check(_extract(path, Path(tmp)), path)
    else:
        manifest, problems = _check(path, path)
    if problems:
        raise VerifyError("bundle does not match its manifest: " + "; ".join(problems), path=path)
    return manifest
