"""A fuzz pass over ``verify``: random changes to a valid bundle folder and to its ``.tar.gz``.

Whatever the change, ``verify`` either returns the manifest (only when nothing it vouches for changed) or
raises ``VerifyError`` (exit 6) with a one-line message; never another exception. It writes nothing but
its own temporary folder (pointed here at a folder of the test, checked empty after each example), and
never changes the bundle it checks or writes anything beside an archive.
"""

from __future__ import annotations

import copy
import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeser.bundle import archive, verify
from edgeser.errors import VerifyError
from edgeser.testing import tiny_bundle

FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
MANIFEST = "manifest.json"
ROOT = "b"

# ---- the bundle, its snapshot, and where the fuzz works ------------------------------------------------


class Place:
    """The template bundle and archive, a scratch area (a fresh folder per example), verify's temporary folder."""

    def __init__(self, bundle: Path, tar: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], base: Path
                 ) -> None:
        self.bundle, self.archive, self.members = bundle, tar, members
        self.manifest: dict[str, Any] = json.loads((bundle / MANIFEST).read_text())
        self.work, self.private_tmp = base / "work", base / "private-tmp"
        for folder in (self.work, self.private_tmp):
            folder.mkdir()
        self.counter = 0

    def __repr__(self) -> str:
        return f"Place({self.work})"

    def fresh(self) -> Path:
        self.counter += 1
        folder = self.work / f"x{self.counter}"
        folder.mkdir()
        return folder


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Place]:
    base = tmp_path_factory.mktemp("fuzz")
    bundle = tiny_bundle(base / "template" / ROOT)
    tar = archive(bundle, base / "template.tar.gz", arcname=ROOT)
    with tarfile.open(tar) as t:
        members = [(m, t.extractfile(m).read() if m.isreg() else None) for m in t.getmembers()]  # type: ignore[union-attr]
    place = Place(bundle, tar, members, base)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMPDIR", str(place.private_tmp))
        mp.setattr(tempfile, "tempdir", str(place.private_tmp))
        yield place


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under ``root`` with its kind and content (links are not followed)."""
    found: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirs, names in os.walk(root, followlinks=False):
        for name in [*dirs, *names]:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                found[rel] = ("link", os.readlink(path))
            elif stat.S_ISREG(mode):
                found[rel] = ("file", path.read_bytes())
            elif stat.S_ISDIR(mode):
                found[rel] = ("dir",)
            else:
                found[rel] = ("special", stat.S_IFMT(mode))
    return found


def _one_line_verify_error(path: Path) -> None:
    with pytest.raises(VerifyError) as err:
        verify(path)
    assert err.value.exit_code == 6
    assert "\n" not in err.value.message and "\r" not in err.value.message, err.value.message
    assert err.value.message.startswith(f"{path}: ")


def _outcome(path: Path) -> dict[str, Any] | None:
    """The manifest verify returned, or None when it raised a well-formed VerifyError."""
    try:
        return verify(path)
    except VerifyError as exc:
        assert exc.exit_code == 6
        assert "\n" not in exc.message and "\r" not in exc.message, exc.message
        assert exc.message.startswith(f"{path}: ")
        return None


# ---- what verify vouches for in a manifest --------------------------------------------------------------

_MISSING = object()
_VOUCHED = [("format",), ("files",), ("target",), ("recipe", "target"), ("recipe", "runtime", "backend"),
            ("model", "file"), ("model", "sha256"), ("model", "variant"), ("runtime", "backend"),
            ("drift", "shipped_passed"), ("drift", "shipped_variant")]


def _get(node: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON (so ``1``, ``1.0`` and ``true`` differ)."""
    if a is _MISSING or b is _MISSING:
        return a is b
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def manifest_verdict(original: dict[str, Any], edited: Any) -> str:
    """``same``, ``must_fail`` (a vouched field changed or became invalid) or ``free`` (other keys changed)."""
    if _same(original, edited):
        return "same"
    if not isinstance(edited, dict):
        return "must_fail"
    if any(not _same(_get(original, p), _get(edited, p)) for p in _VOUCHED):
        return "must_fail"
    threads = _get(edited, ("runtime", "threads"))
    if not (type(threads) is int and threads >= 1) or not isinstance(_get(edited, ("input",)), dict):
        return "must_fail"
    return "free"


def _read_manifest(folder: Path) -> Any:
    path = folder / MANIFEST
    if path.is_symlink() or not path.is_file():
        return _MISSING
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _MISSING


# ---- random changes to a folder --------------------------------------------------------------------------

NAMES = st.one_of(
    st.sampled_from(["__pycache__", "evil.py", "x.pyc", "x.pyo", MANIFEST, "model.onnx", ".hidden", "a\nb", "cr\rlf",
                     "sp ace", "é", "back\\slash", "bad\udcffbyte", "tab\tname", "..."]),
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="/\x00"), min_size=1, max_size=12)
    .filter(lambda s: s not in (".", "..")),
)
BLOBS = st.binary(min_size=0, max_size=64)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
INDEX = st.integers(0, 10**6)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _dirs(folder: Path) -> list[Path]:
    return [folder, *sorted(p for p in folder.rglob("*") if p.is_dir() and not p.is_symlink())]


def _free_name(parent: Path, name: str) -> Path:
    path = parent / name
    while path.exists() or path.is_symlink():
        path = path.with_name(path.name + "_")
    return path


def _manifest_paths(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            paths += _manifest_paths(value, (*prefix, key))
    return paths


def _edit_manifest(folder: Path, action: str, index: int, key: str, value: Any) -> None:
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:  # an earlier change broke it: nothing to edit
        return
    paths = _manifest_paths(manifest)
    if action == "root":
        manifest = value
    elif paths:
        *parents, leaf = paths[index % len(paths)]
        node = manifest
        for p in parents:
            node = node[p]
        if action == "delete":
            del node[leaf]
        elif action == "set":
            node[leaf] = value
        elif action == "add" and isinstance(node[leaf], dict):
            node[leaf][key] = value
        elif action == "similar" and isinstance(node[leaf], str) and node[leaf]:
            old = node[leaf]
            node[leaf] = old[:-1] + chr((ord(old[-1]) + 1) % 0x110000 or 1)
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def apply(folder: Path, op: tuple[Any, ...], outside: Path) -> None:
    """One random change to a bundle folder."""
    kind, i, j, name, blob = op[:5]
    files, dirs = _files(folder), _dirs(folder)
    target = files[i % len(files)] if files else None
    parent = dirs[j % len(dirs)]
    if kind == "manifest":
        if (folder / MANIFEST).is_file():
            _edit_manifest(folder, *op[5])
    elif target is None:
        return
    elif kind == "flip":
        data = bytearray(target.read_bytes())
        if data:
            data[j % len(data)] ^= blob[0] if blob and blob[0] else 0x55
            target.write_bytes(bytes(data))
    elif kind == "truncate":
        size = target.stat().st_size
        with open(target, "r+b") as fh:
            fh.truncate(j % size if size else 0)
    elif kind == "append":
        with open(target, "ab") as fh:
            fh.write(blob or b"\0")
    elif kind == "delete":
        target.unlink()
    elif kind == "add_file":
        _free_name(parent, name).write_bytes(blob)
    elif kind == "add_dir":
        _free_name(parent, name).mkdir()
    elif kind == "fifo":
        os.mkfifo(_free_name(parent, name))
    elif kind == "symlink":
        choices = [outside / "twin", outside, target, parent, outside / "nothing", "/etc/passwd", "."]
        link = _free_name(parent, name)
        dest = choices[i % len(choices)]
        link.symlink_to(link if dest == "." else dest)
    elif kind == "to_symlink":  # the same bytes, through a link
        twin = _free_name(outside, "copy")
        shutil.copyfile(target, twin)
        target.unlink()
        target.symlink_to(twin)
    elif kind == "to_hardlink":  # the same bytes, a regular file that shares its inode with one outside
        twin = _free_name(outside, "hard")
        shutil.copyfile(target, twin)
        target.unlink()
        os.link(twin, target)
    elif kind == "to_dir":
        target.unlink()
        target.mkdir()
    elif kind == "rename":
        target.rename(_free_name(parent, name))


FOLDER_OPS = st.tuples(
    st.sampled_from(["flip", "truncate", "append", "delete", "add_file", "add_dir", "fifo", "symlink", "to_symlink",
                     "to_hardlink", "to_dir", "rename", "manifest", "manifest", "manifest"]),
    INDEX, INDEX, NAMES, BLOBS,
    st.tuples(st.sampled_from(["set", "set", "delete", "add", "similar", "root"]), INDEX, st.text(max_size=8),
              JSON_VALUES),
)


@FUZZ
@given(ops=st.lists(FOLDER_OPS, min_size=1, max_size=3))
def test_verify_a_changed_folder(place: Place, ops: list[tuple[Any, ...]]) -> None:
    example = place.fresh()
    folder, outside = example / ROOT, example / "outside"
    shutil.copytree(place.bundle, folder)
    outside.mkdir()
    (outside / "twin").write_bytes((folder / "model.onnx").read_bytes())
    for op in ops:
        apply(folder, op, outside)
    before = snapshot(folder)
    original = {k: v for k, v in snapshot(place.bundle).items() if k != MANIFEST}
    files_changed = {k: v for k, v in before.items() if k != MANIFEST} != original
    verdict = manifest_verdict(place.manifest, _read_manifest(folder))
    if before.get(MANIFEST, ("?",))[0] != "file":
        verdict = "must_fail"

    result = _outcome(folder)

    assert snapshot(folder) == before, "verify changed the bundle"
    assert list(place.private_tmp.iterdir()) == []
    if files_changed or verdict == "must_fail":
        assert result is None, f"verify passed a changed bundle: {ops}"
    elif verdict == "same":
        assert result == place.manifest
    if result is not None:
        assert result == _read_manifest(folder)
    shutil.rmtree(example)


# ---- random changes to an archive ------------------------------------------------------------------------


def _info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, link
    return info


def _renamed(name: str, how: int, new: str) -> str:
    rel = name.split("/", 1)[1] if "/" in name else name
    return [f"{ROOT}/../{rel}", f"/{name}", f"{ROOT}/./{rel}", f"{ROOT}//{rel}", f"other/{rel}", f"{ROOT}/{new}",
            f"{name}/", rel, f"{ROOT}/{rel}/../../x", f"{ROOT}/{new}/{rel}"][how % 10]


def mutate_members(members: list[tuple[tarfile.TarInfo, bytes | None]], op: tuple[Any, ...]
                   ) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """One random change to an archive's list of entries."""
    kind, i, j, name, blob = op
    out = [(copy.copy(m), d) for m, d in members]
    k = i % len(out)
    info, data = out[k]
    if kind == "content" and data is not None:
        changed = bytearray(data)
        if changed:
            changed[j % len(changed)] ^= blob[0] if blob and blob[0] else 0x55
        out[k] = (info, bytes(changed) + (blob if j % 3 == 0 else b""))
    elif kind == "drop":
        del out[k]
    elif kind == "duplicate":
        out.insert(j % (len(out) + 1), (copy.copy(info), data if j % 2 else blob))
    elif kind == "rename":
        info.name = _renamed(info.name, j, name)
    elif kind == "pax_path":
        info.pax_headers = {"path": _renamed(info.name, j, name)}
    elif kind == "add":
        new = f"{ROOT}/{name}"
        extra = [(_info(new, size=len(blob)), blob), (_info(new, tarfile.DIRTYPE), None),
                 (_info(new, tarfile.SYMTYPE, link="/etc/passwd"), None),
                 (_info(new, tarfile.SYMTYPE, link="model.onnx"), None),
                 (_info(new, tarfile.LNKTYPE, link=info.name), None),
                 (_info(new, tarfile.LNKTYPE, link="/etc/passwd"), None),
                 (_info(new, tarfile.CHRTYPE), None), (_info(new, tarfile.FIFOTYPE), None),
                 (_info(f"{ROOT}/runner/__pycache__/x.pyc", size=len(blob)), blob),
                 (_info(ROOT, tarfile.DIRTYPE), None), (_info(f"{ROOT}/runner", tarfile.DIRTYPE), None),
                 (_info(f"{ROOT}/{name}/", tarfile.DIRTYPE), None)][j % 12]
        out.insert(i % (len(out) + 1), extra)
    elif kind == "huge":
        info.size = [2**40, 2**31, 300 * 2**20][j % 3]  # declared, never written
        out[k] = (info, None)
    elif kind == "metadata":  # not content: verify must still pass
        info.mtime, info.uid, info.gid, info.uname, info.mode = j % 2**31, j % 65536, i % 65536, name[:20], j % 0o7777
    elif kind == "reorder":
        out.reverse()
    return out


def write_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None and info.isreg():
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None and info.isreg() else None)
            if data is None and info.isreg() and info.size:  # declared content that is not there
                break
    import gzip

    path.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))


def expected_tree(members: list[tuple[tarfile.TarInfo, bytes | None]]
                  ) -> tuple[dict[str, bytes], set[str]] | None:
    """What a faithful unpacking gives (file name -> bytes, folder entries), or None when it must be refused."""
    files: dict[str, bytes] = {}
    folders: set[str] = set()
    for info, data in members:
        name = info.pax_headers.get("path", info.name)
        through_pax = "path" in info.pax_headers or not name.isascii() or len(name) > tarfile.LENGTH_NAME
        name = name.rstrip("/") if info.isdir() or through_pax else name  # as tarfile reads the name back
        parts = name.split("/")
        if parts[0] != ROOT or any(p in ("", ".", "..") for p in parts) or name in files:
            return None
        if info.isdir():
            folders.add(name)
        elif info.isreg() and data is not None and name not in folders:
            files[name] = data
        else:
            return None
    return files, folders


ARCHIVE_OPS = st.tuples(
    st.sampled_from(["content", "drop", "duplicate", "rename", "pax_path", "add", "huge", "metadata", "reorder"]),
    INDEX, INDEX, NAMES.filter(lambda s: "\udcff" not in s), st.binary(min_size=1, max_size=32))


def _check_archive(place: Place, path: Path) -> dict[str, Any] | None:
    result = _outcome(path)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name], "verify wrote beside the archive"
    assert list(place.private_tmp.iterdir()) == [], "verify left files in its temporary folder"
    return result


@FUZZ
@given(ops=st.lists(ARCHIVE_OPS, min_size=1, max_size=3))
def test_verify_a_crafted_archive(place: Place, ops: list[tuple[Any, ...]]) -> None:
    members = place.members
    for op in ops:
        members = mutate_members(members, op)
    path = place.fresh() / "bundle.tar.gz"
    write_tar(path, members)
    template = {m.name: d for m, d in place.members}

    result = _check_archive(place, path)

    expected = expected_tree(members)
    implied = {"/".join(n.split("/")[:k]) for n in template for k in range(1, n.count("/") + 1)}
    key = f"{ROOT}/{MANIFEST}"
    if expected is None or not expected[1] <= implied or set(expected[0]) != set(template) or any(
            expected[0][name] != data for name, data in template.items() if name != key):
        assert result is None, f"verify passed a changed archive: {ops}"
        return
    try:
        edited = json.loads(expected[0][key].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        edited = _MISSING
    verdict = manifest_verdict(place.manifest, edited)
    if verdict == "must_fail":
        assert result is None, f"verify passed a changed manifest: {ops}"
    elif verdict == "same":
        assert result == place.manifest
    if result is not None:
        assert result == edited


@FUZZ
@given(where=INDEX, how=st.sampled_from(["flip", "truncate", "append"]), blob=st.binary(min_size=1, max_size=32))
def test_verify_a_damaged_archive_file(place: Place, where: int, how: str, blob: bytes) -> None:
    data = bytearray(place.archive.read_bytes())
    if how == "flip":
        data[where % len(data)] ^= blob[0]
    elif how == "truncate":
        del data[where % len(data):]
    else:
        data += blob
    path = place.fresh() / "bundle.tar.gz"
    path.write_bytes(bytes(data))

    result = _check_archive(place, path)

    if result is not None:  # only bytes that carry no content (the gzip header's time, trailing data) may change
        assert result == place.manifest
    shutil.rmtree(path.parent)


def test_the_fuzz_starts_from_a_bundle_that_verifies(place: Place) -> None:
    assert verify(place.bundle) == place.manifest == verify(place.archive)
    folder = place.fresh() / ROOT
    shutil.copytree(place.bundle, folder)
    apply(folder, ("delete", 0, 0, "x", b""), folder.parent)
    _one_line_verify_error(folder)
