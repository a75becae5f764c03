"""Atomic writes: finished outputs are renamed into place with the usual permissions; failures leave nothing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from edgeser import models
from edgeser.bundle import commit_dir, staging_dir
from edgeser.fileio import DIR_MODE, FILE_MODE, replacing


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_replacing_renames_a_finished_file_with_the_usual_mode(tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "out.bin"
    with replacing(dest, suffix=".bin") as tmp:
        assert tmp.parent == dest.parent and tmp.name.endswith(".bin") and not dest.exists()
        tmp.write_bytes(b"new")
    assert dest.read_bytes() == b"new" and _mode(dest) == FILE_MODE
    assert [p.name for p in dest.parent.iterdir()] == ["out.bin"]


def test_replacing_keeps_the_old_file_and_no_temporary_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError), replacing(dest) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert dest.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_checkpoints_and_bundle_folders_are_readable_by_others(tmp_path: Path) -> None:
    path = models.save(models.create_model("wav2small", channels=4), tmp_path / "m.safetensors")
    assert _mode(path) == FILE_MODE
    out = tmp_path / "bundle"
    with staging_dir(out) as tmp:
        (tmp / "x.txt").write_text("x")
        commit_dir(tmp, out)
    assert _mode(out) == DIR_MODE and (out / "x.txt").read_text() == "x"
