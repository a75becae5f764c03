"""Bundles: the manifest vouches for every byte, verify accepts nothing more, and outputs are replaced safely."""

import importlib.util
import io
import json
import os
import py_compile
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from edgeser.bundle import archive, replace_outputs, staging_dir, verify, write_manifest
from edgeser.errors import OutputError, VerifyError
from edgeser.runtime.integrity import BundleError, open_bundle_model
from edgeser.testing import tiny_bundle


@pytest.fixture
def bundle(tmp_path):
    return tiny_bundle(tmp_path / "b")


@pytest.fixture
def runnable(tmp_path, teacher_onnx):
    return tiny_bundle(tmp_path / "r", model=teacher_onnx.read_bytes())


def _rewrite(folder, **changes):
    """Edit manifest fields (dotted keys) without re-hashing anything."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for dotted, value in changes.items():
        node = manifest
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _problems(path):
    with pytest.raises(VerifyError) as err:
        verify(path)
    assert err.value.exit_code == 6 and "\n" not in err.value.message
    return err.value.message


def test_manifest_hashes_every_file_and_blocks_bytecode_caches(bundle):
    manifest = verify(bundle)
    assert manifest["target"] == "rpi"
    assert {"model.onnx", "runner/__main__.py", "runner/edgeser_runtime/engine.py"} <= set(manifest["files"])
    for folder in ("runner", "runner/edgeser_runtime"):
        assert (bundle / folder / "__pycache__").is_file()
        assert f"{folder}/__pycache__" in manifest["files"]


def test_verify_names_changed_missing_and_unexpected(bundle):
    (bundle / "model.onnx").write_bytes(b"tampered")
    (bundle / "runner" / "__init__.py").unlink()
    (bundle / "extra.txt").write_text("hi")
    msg = _problems(bundle)
    assert "changed: model.onnx" in msg and "missing: runner/__init__.py" in msg and "unexpected: extra.txt" in msg


def _plant_bytecode(bundle, marker):
    """Replace a runner module's cache blocker by a real __pycache__ holding bytecode of a hostile source
    whose header matches the shipped source's mtime and size, as an attacker would."""
    package = bundle / "runner" / "edgeser_runtime"
    source = package / "integrity.py"
    original = source.read_bytes()
    hostile = f"open({str(marker)!r}, 'w').write('pwned')\n".encode()
    hostile += b"#" * (len(original) - len(hostile) - 1) + b"\n"
    assert len(hostile) == len(original)
    stat = source.stat()
    (package / "__pycache__").unlink()
    source.write_bytes(hostile)
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    pyc = Path(importlib.util.cache_from_source(str(source)))
    py_compile.compile(str(source), cfile=str(pyc), doraise=True)
    source.write_bytes(original)
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return pyc


def test_planted_bytecode_is_rejected_as_folder_and_as_archive(bundle, tmp_path):
    pyc = _plant_bytecode(bundle, tmp_path / "marker")
    msg = _problems(bundle)
    rel = pyc.relative_to(bundle).as_posix()
    assert f"unexpected: {rel}" in msg and "missing: runner/edgeser_runtime/__pycache__" in msg
    tar = tmp_path / "b.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        t.add(bundle, arcname="b")
    assert rel in _problems(tar)


@pytest.mark.slow
def test_runner_never_writes_bytecode_and_the_service_never_reads_it(runnable, tmp_path):
    # A plain `python -m runner` (no -B) leaves the bundle exactly as shipped.
    run = subprocess.run([sys.executable, "-m", "runner", "--check"], cwd=runnable, capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})
    assert run.returncode == 0, run.stderr
    assert not [p for p in runnable.rglob("*.pyc")]
    verify(runnable)
    # With a cache planted, the service's environment (a cache prefix outside the bundle) never runs it,
    # and the runner's own check refuses the bundle.
    marker = tmp_path / "marker"
    _plant_bytecode(runnable, marker)
    unit = (Path(__file__).parents[1] / "targets" / "rpi" / "edgeser-listener.service").read_text()
    assert "PYTHONPYCACHEPREFIX=" in unit and "CacheDirectory=" in unit
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, "-B", "-m", "runner", "--check"], cwd=runnable, capture_output=True,
                         text=True, timeout=120, env=env)
    assert run.returncode == 6 and "__pycache__" in run.stderr
    assert not marker.exists()


def test_manifest_content_is_checked(bundle, tmp_path):
    _rewrite(bundle, target="coral")
    assert "target 'coral' differs from its recipe's 'rpi'" in _problems(bundle)
    _rewrite(bundle, target="rpi")
    verify(bundle)
    outside = tmp_path / "outside.onnx"
    outside.write_bytes((bundle / "model.onnx").read_bytes())
    _rewrite(bundle, **{"model.file": str(outside)})
    assert "is not a file name inside the bundle" in _problems(bundle)
    with pytest.raises(BundleError, match="not a file name inside the bundle"):
        open_bundle_model(bundle)
    _rewrite(bundle, **{"model.file": "../outside.onnx"})
    assert "not a file name inside the bundle" in _problems(bundle)
    _rewrite(bundle, **{"model.file": "model.onnx", "model.sha256": "0" * 64})
    assert "model.sha256 differs" in _problems(bundle)


def test_runtime_backend_must_match_the_model_bytes(bundle):
    for key in ("runtime.backend", "recipe.runtime.backend"):
        _rewrite(bundle, **{key: "litert"})
    assert "does not match the model file" in _problems(bundle)


@pytest.mark.parametrize("bad", ["not json {", "[1, 2]", "\xff\xfe"])
def test_corrupt_manifest_is_one_line(bundle, bad):
    (bundle / "manifest.json").write_bytes(bad.encode("latin-1"))
    assert "manifest.json is corrupt" in _problems(bundle)


def test_symlinks_are_reported(bundle, tmp_path):
    twin = tmp_path / "twin.onnx"
    twin.write_bytes((bundle / "model.onnx").read_bytes())
    (bundle / "model.onnx").unlink()
    (bundle / "model.onnx").symlink_to(twin)
    assert "model.onnx (symlink)" in _problems(bundle)
    (bundle / "model.onnx").unlink()
    (bundle / "model.onnx").write_bytes(twin.read_bytes())
    verify(bundle)
    (bundle / "runner" / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    (bundle / "loop").symlink_to(bundle / "loop")
    (bundle / "broken").symlink_to(tmp_path / "nothing")
    msg = _problems(bundle)
    assert all(f"{name} (symlink)" in msg for name in ("runner/dirlink", "loop", "broken"))
    link = tmp_path / "link"
    link.symlink_to(bundle)
    assert "symbolic link" in _problems(link)


def test_runtime_check_allows_device_files_beside_but_not_inside_runner(bundle):
    (bundle / ".venv").mkdir()
    (bundle / ".venv" / "pyvenv.cfg").write_text("home = /usr\n")
    (bundle / "log.csv").write_text("t,a\n")
    model, _ = open_bundle_model(bundle)
    assert model == bundle / "model.onnx"
    assert "unexpected: .venv/pyvenv.cfg, log.csv" in _problems(bundle)
    (bundle / "runner" / "evil.py").write_text("print('x')\n")
    with pytest.raises(BundleError, match="unexpected: runner/evil.py"):
        open_bundle_model(bundle)


def test_archive_round_trip_and_tamper(bundle, tmp_path):
    tar = archive(bundle, tmp_path / "b.tar.gz", arcname="b")
    assert verify(tar)["files"] == verify(bundle)["files"]
    with tarfile.open(tar) as t:
        assert all(m.isreg() for m in t.getmembers())
    with pytest.raises(OutputError):
        archive(bundle, tar, arcname="b")
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tar")
    assert "cannot read bundle archive" in _problems(bad)


def _tar_with(tmp_path, *members):
    path = tmp_path / "crafted.tar.gz"
    with tarfile.open(path, "w:gz") as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def test_crafted_archives_are_refused_without_writing_outside(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    link = tarfile.TarInfo("b/model.onnx")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    assert "link or special file" in _problems(_tar_with(tmp_path, (link, None)))
    assert "points outside the bundle" in _problems(_tar_with(tmp_path, _file("b/../../escape.txt")))
    absolute = tmp_path / "outside" / "abs.txt"  # an absolute name that, if written, lands in the test's folder
    assert "points outside the bundle" in _problems(_tar_with(tmp_path, _file(str(absolute))))
    assert "exactly one bundle folder" in _problems(_tar_with(tmp_path, _file("a/x"), _file("b/y")))
    huge = tarfile.TarInfo("b/model.onnx")
    huge.size = 2**40  # declared size alone is refused, before anything is unpacked
    assert "larger than a bundle can be" in _problems(_tar_with(tmp_path, (huge, None)))
    assert not (tmp_path / "escape.txt").exists() and not absolute.exists()
    assert list((tmp_path / "tmp").iterdir()) == []


def test_gzip_bomb_is_stopped_at_the_cap(tmp_path, monkeypatch):
    import edgeser.bundle as bundle_module

    monkeypatch.setattr(bundle_module, "MAX_ARCHIVE_BYTES", 1 << 20)
    data = bytes(2 << 20)
    assert "larger than a bundle can be" in _problems(_tar_with(tmp_path, _file("b/zeros", data)))


def test_verify_without_manifest(tmp_path):
    assert "manifest.json is missing" in _problems(tmp_path)


def test_staging_dir_cleans_up_on_failure(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staging_dir(out) as stage:
        (stage / "half.txt").write_text("half-written")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    out.mkdir()
    with pytest.raises(OutputError, match="exists already"), staging_dir(out):
        pass
    with staging_dir(out, overwrite=True) as stage:
        assert stage.is_dir() and stage != out


def test_replace_outputs_puts_everything_back_when_a_move_fails(tmp_path):
    old_dir, old_tar = tmp_path / "out", tmp_path / "out.tar.gz"
    old_dir.mkdir()
    (old_dir / "keep").write_text("old")
    old_tar.write_text("old archive")
    new_dir = tmp_path / "new"
    new_dir.mkdir()
    (new_dir / "keep").write_text("new")
    missing_tar = tmp_path / "never-written.tar.gz"
    with pytest.raises(OutputError, match="cannot move") as err:
        replace_outputs([(new_dir, old_dir), (missing_tar, old_tar)])
    assert err.value.path == old_tar  # the output whose move failed
    assert (old_dir / "keep").read_text() == "old" and old_tar.read_text() == "old archive"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "out", "out.tar.gz"]
    new_tar = tmp_path / "new.tar.gz"
    new_tar.write_text("new archive")
    replace_outputs([(new_dir, old_dir), (new_tar, old_tar)])
    assert (old_dir / "keep").read_text() == "new" and old_tar.read_text() == "new archive"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out.tar.gz"]


def test_write_manifest_refuses_symlinks_in_the_staged_folder(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "model.onnx").symlink_to(tmp_path)
    with pytest.raises(OutputError, match="not regular files"):
        write_manifest(folder, {})


# ---- found by the verify fuzz pass (tests/test_verify_fuzz.py) ---------------------------------------------


def test_odd_file_names_stay_on_one_line(bundle):
    (bundle / "a\nb").write_text("x")
    (bundle / "runner" / "c\rd").write_text("x")
    msg = _problems(bundle)
    assert "unexpected: 'a\\nb', 'runner/c\\rd'" in msg


def test_empty_folders_are_unexpected_too(bundle):
    (bundle / "empty" / "deeper").mkdir(parents=True)
    assert _problems(bundle).endswith("unexpected: empty/deeper/")
    (bundle / "empty" / "deeper").rmdir()
    (bundle / "empty").rmdir()
    (bundle / "runner" / "edgeser_runtime" / "pkg").mkdir()
    assert "unexpected: runner/edgeser_runtime/pkg/" in _problems(bundle)
    with pytest.raises(BundleError, match="unexpected: runner/edgeser_runtime/pkg/"):
        open_bundle_model(bundle)
    (bundle / "runner" / "edgeser_runtime" / "pkg").rmdir()
    (bundle / "logs").mkdir()  # beside runner/: the device may keep folders there
    open_bundle_model(bundle)
    assert "unexpected: logs/" in _problems(bundle)


@pytest.mark.parametrize("key", ["model", "runtime", "recipe", "drift"])
@pytest.mark.parametrize("value", [[1], "x", 3, None])
def test_manifest_tables_of_the_wrong_type_are_problems_not_crashes(bundle, key, value):
    _rewrite(bundle, **{key: value})
    assert "bundle does not match its manifest" in _problems(bundle)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a": ' + "1" * 5000 + "}"],
                         ids=["deeply-nested", "5000-digit-number"])
def test_manifests_json_cannot_exhaust_the_parser(bundle, text):
    (bundle / "manifest.json").write_text(text)
    assert "manifest.json is corrupt" in _problems(bundle)
    with pytest.raises(BundleError, match="manifest.json is corrupt"):
        open_bundle_model(bundle)


def test_corrupt_deflate_data_after_the_first_block_is_a_verify_error(bundle, tmp_path):
    import gzip

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as t:
        t.add(bundle, arcname="b")
    broken = tmp_path / "broken.tar.gz"  # a valid first gzip member, then one whose deflate block type is invalid
    broken.write_bytes(gzip.compress(buffer.getvalue()[:4096], mtime=0)
                       + b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff\x07" + bytes(20))
    assert _problems(broken) == f"{broken}: cannot read bundle archive (Error -3 while decompressing data: " \
                                "invalid block type)"


def test_an_archive_without_a_manifest_is_named_in_the_message(bundle, tmp_path):
    (bundle / "manifest.json").unlink()
    tar = tmp_path / "b.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        t.add(bundle, arcname="b")
    assert _problems(tar) == f"{tar}: not a bundle: manifest.json is missing"


def test_a_file_entry_named_like_a_folder_is_refused(bundle, tmp_path):
    tar = tmp_path / "b.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        for path in sorted(bundle.rglob("*")):
            rel = path.relative_to(bundle).as_posix()
            if path.is_file():
                t.add(path, arcname=f"b/{rel}/" if rel == "README.md" else f"b/{rel}", recursive=False)
    assert _problems(tar) == f"{tar}: archive entry 'b/README.md/' points outside the bundle"


# ---- pinned by mutation testing (docs/testing.md) ----------------------------------------------------------


def test_errors_name_the_path_they_are_about(bundle, tmp_path):
    assert _problems(tmp_path).startswith(f"{tmp_path}: not a bundle")
    tar = archive(bundle, tmp_path / "b.tar.gz", arcname="b")
    with pytest.raises(OutputError) as err:
        archive(bundle, tar, arcname="b")
    assert err.value.message == f"{tar}: archive exists already"
    from edgeser.bundle import assemble
    from edgeser.errors import InputError
    from edgeser.resources import targets_dir

    with pytest.raises(InputError) as err:
        assemble(tmp_path / "x", target="toaster")
    assert err.value.message == f"{targets_dir() / 'toaster'}: no runner files for target 'toaster'"


def test_write_manifest_names_every_odd_entry(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "b").symlink_to(tmp_path)
    (folder / "a").symlink_to(tmp_path / "nothing")
    with pytest.raises(OutputError) as err:
        write_manifest(folder, {})
    assert err.value.message == f"{folder}: bundle folder holds entries that are not regular files: a, b"


def test_manifest_is_indented_json_with_its_format_first(bundle):
    text = (bundle / "manifest.json").read_text(encoding="utf-8")
    assert text.startswith('{\n  "format": "edgeser.bundle/1",\n  "target": "rpi",\n') and text.endswith("\n}\n")


def test_assemble_copies_no_bytecode_and_makes_scripts_executable(tmp_path):
    from edgeser.resources import package_dir, targets_dir

    for source in (package_dir() / "runtime" / "engine.py", targets_dir() / "rpi" / "runner" / "__main__.py"):
        py_compile.compile(str(source), cfile=importlib.util.cache_from_source(str(source)), doraise=True)
    folder = tiny_bundle(tmp_path / "b")
    assert not list(folder.rglob("*.pyc"))
    assert (folder / "runner" / "__pycache__").is_file()
    assert (folder / "runner" / "edgeser_runtime" / "__pycache__").is_file()
    blocked = {p.parent for p in folder.rglob("__pycache__")}
    assert blocked == {p.parent for p in folder.rglob("*.py")}  # every code folder, and only those
    assert (folder / "install.sh").stat().st_mode & 0o777 == 0o755
    verify(folder)


def test_commit_dir_moves_the_staged_folder_into_place(tmp_path):
    from edgeser.bundle import commit_dir
    from edgeser.fileio import DIR_MODE

    out = tmp_path / "out"
    with staging_dir(out) as stage:
        (stage / "f").write_text("new")
        commit_dir(stage, out)
    assert (out / "f").read_text() == "new" and not stage.exists()
    assert out.stat().st_mode & 0o777 == DIR_MODE


def test_replace_outputs_names_the_output_that_could_not_be_moved(tmp_path):
    first, second = tmp_path / "out", tmp_path / "out.tar.gz"
    second.write_text("old archive")
    new_second = tmp_path / "new.tar.gz"
    new_second.write_text("new archive")
    with pytest.raises(OutputError) as err:
        replace_outputs([(tmp_path / "never-staged", first), (new_second, second)])
    assert err.value.path == first and err.value.message.startswith(f"{first}: cannot move the finished output")
    assert second.read_text() == "old archive" and new_second.read_text() == "new archive"


def _bundle_tar(bundle, tmp_path):
    """The bundle as an archive that also holds folder entries (size 0), as `tar czf` writes it."""
    tar = tmp_path / "full.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        t.add(bundle, arcname="b")
    with tarfile.open(tar) as t:
        members = t.getmembers()
    assert any(m.isdir() for m in members)
    return tar, len(members), sum(m.size for m in members)


def test_archive_caps_are_inclusive_and_count_every_entry(bundle, tmp_path, monkeypatch):
    import edgeser.bundle as bundle_module

    tar, entries, size = _bundle_tar(bundle, tmp_path)
    monkeypatch.setattr(bundle_module, "MAX_ARCHIVE_MEMBERS", entries)
    monkeypatch.setattr(bundle_module, "MAX_ARCHIVE_BYTES", size)
    verify(tar)
    monkeypatch.setattr(bundle_module, "MAX_ARCHIVE_BYTES", size - 1)  # the sum of all files, not the largest
    assert "larger than a bundle can be" in _problems(tar)
    monkeypatch.setattr(bundle_module, "MAX_ARCHIVE_BYTES", size)
    monkeypatch.setattr(bundle_module, "MAX_ARCHIVE_MEMBERS", entries - 1)
    assert "larger than a bundle can be" in _problems(tar)


def test_archive_cap_message_states_the_caps(tmp_path):
    huge = tarfile.TarInfo("b/model.onnx")
    huge.size = 2**40
    msg = _problems(_tar_with(tmp_path, (huge, None)))
    assert msg == f"{tmp_path / 'crafted.tar.gz'}: archive is larger than a bundle can be (over 10000 entries or " \
                  "256 MiB unpacked)"


def test_link_entries_are_refused_naming_the_archive(tmp_path):
    link = tarfile.TarInfo("b/model.onnx")
    link.type, link.linkname = tarfile.LNKTYPE, "b/other"
    path = _tar_with(tmp_path, (link, None))
    assert _problems(path) == f"{path}: archive entry 'b/model.onnx' is a link or special file"


@pytest.mark.parametrize(("change", "problem"), [
    ({"target": "toaster"}, "manifest's target 'toaster' is not one of android, coral, rpi"),
    ({"recipe.runtime.backend": "litert"}, "manifest's runtime.backend differs from its recipe's"),
    ({"drift.shipped_passed": False}, "manifest does not record a passed drift gate for the shipped model"),
    ({"drift.shipped_variant": "float"}, "manifest's model.variant differs from the variant its drift gate passed"),
])
def test_each_host_check_names_its_problem(bundle, change, problem):
    _rewrite(bundle, **change)
    assert _problems(bundle) == f"{bundle}: bundle does not match its manifest: {problem}"


def test_archive_entries_in_any_order_unpack_to_the_same_bundle(bundle, tmp_path):
    """Files before their folders, folders repeated, a deep folder before its parent: as other tar tools write."""
    files = sorted(p for p in bundle.rglob("*") if p.is_file())
    folders = sorted((p for p in bundle.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    deepest_file = max(files, key=lambda p: len(p.parts))
    for first in (folders[0], deepest_file):  # the first entry's parent folders are not in the archive yet
        tar = tmp_path / "any-order.tar.gz"
        with tarfile.open(tar, "w:gz") as t:
            for path in [first, *(f for f in reversed(files) if f != first), *folders, bundle, bundle / "runner"]:
                t.add(path, arcname=f"b/{path.relative_to(bundle).as_posix()}".rstrip("/."), recursive=False)
        with tarfile.open(tar) as t:
            names = [m.name for m in t.getmembers()]
        assert names[0].count("/") >= 2 and names.count("b/runner") == 2
        assert verify(tar) == verify(bundle)
        tar.unlink()


def test_repeated_and_misplaced_entries_are_named(tmp_path):
    twice = _tar_with(tmp_path, _file("b/model.onnx"), _file("b/model.onnx"))
    assert _problems(twice) == f"{twice}: archive entry 'b/model.onnx' is unreadable or repeated"
    two_roots = _tar_with(tmp_path, _file("a/x"), _file("b/y"))
    assert _problems(two_roots) == f"{two_roots}: archive does not hold exactly one bundle folder"
    absolute = _tar_with(tmp_path, _file(f"{tmp_path}/abs.txt"))
    assert _problems(absolute) == f"{absolute}: archive entry '{tmp_path}/abs.txt' points outside the bundle"
    assert not (tmp_path / "abs.txt").exists()


def test_verify_names_what_it_cannot_check(bundle, tmp_path):
    missing = tmp_path / "nothing-here"
    assert _problems(missing) == f"{missing}: bundle not found"
    link = tmp_path / "link"
    link.symlink_to(bundle)
    assert _problems(link) == f"{link}: bundle is a symbolic link; verify the folder or archive itself"
    (bundle / "model.onnx").write_bytes(b"tampered")
    _rewrite(bundle, **{"drift.shipped_passed": False})
    assert _problems(bundle) == (f"{bundle}: bundle does not match its manifest: manifest does not record a passed "
                                 "drift gate for the shipped model; changed: model.onnx")


def test_only_a_gzip_archive_is_a_bundle_archive(bundle, tmp_path):
    plain = tmp_path / "b.tar"
    with tarfile.open(plain, "w") as t:
        t.add(bundle, arcname="b")
    assert _problems(plain).startswith(f"{plain}: cannot read bundle archive (")
