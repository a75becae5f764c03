import json
import tarfile

import pytest

from edgeser.bundle import archive, staging_dir, verify, write_manifest
from edgeser.errors import OutputError, VerifyError


@pytest.fixture
def bundle(tmp_path):
    folder = tmp_path / "b"
    (folder / "runner").mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"model")
    (folder / "runner" / "x.py").write_text("print(1)\n")
    write_manifest(folder, {"target": "rpi", "model": {"file": "model.onnx", "variant": "int8"}})
    return folder


def test_manifest_hashes_every_file(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert set(manifest["files"]) == {"model.onnx", "runner/x.py"}
    assert verify(bundle)["target"] == "rpi"


def test_verify_names_changed_missing_and_unexpected(bundle):
    (bundle / "model.onnx").write_bytes(b"tampered")
    (bundle / "runner" / "x.py").unlink()
    (bundle / "extra.txt").write_text("hi")
    (bundle / "runner" / "__pycache__").mkdir()
    (bundle / "runner" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"ignored")
    with pytest.raises(VerifyError) as err:
        verify(bundle)
    msg = str(err.value)
    assert "changed: model.onnx" in msg and "missing: runner/x.py" in msg and "unexpected: extra.txt" in msg
    assert "pyc" not in msg and err.value.exit_code == 6


def test_archive_round_trip_and_tamper(bundle, tmp_path):
    tar = archive(bundle, tmp_path / "b.tar.gz", arcname="b")
    assert verify(tar)["model"]["file"] == "model.onnx"
    with tarfile.open(tar) as t:
        assert sorted(t.getnames()) == ["b/manifest.json", "b/model.onnx", "b/runner/x.py"]
    with pytest.raises(OutputError):
        archive(bundle, tar, arcname="b")
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tar")
    with pytest.raises(VerifyError, match="cannot read bundle archive"):
        verify(bad)


def test_verify_without_manifest(tmp_path):
    with pytest.raises(VerifyError, match="manifest.json is missing"):
        verify(tmp_path)


def test_staging_dir_cleans_up_on_failure(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staging_dir(out) as stage:
        (stage / "half.txt").write_text("half-written")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    out.mkdir()
    with pytest.raises(OutputError, match="exists already"), staging_dir(out):
        pass
