"""One home for each shared piece: the ONNX Runtime session, the sha256 helpers, the rate and the dimensions.

Teachers, runners and host modules take these from one place, so they cannot drift apart: an ONNX
teacher's session is opened exactly as the device runner's is, and teacher identities (the label
cache's keys) stay the sha256 they always were.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from edgeser import audio, fileio, metrics
from edgeser.errors import InputError
from edgeser.runtime import integrity, spec
from edgeser.runtime import onnx as runtime_onnx
from edgeser.teachers import load_teacher
from edgeser.teachers.ensemble import Ensemble


def _options(session: object) -> tuple[int, int, int, str]:
    opts = session.get_session_options()  # type: ignore[attr-defined]
    return (opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level,
            str(opts.graph_optimization_level))


def test_onnx_teacher_session_is_opened_like_the_runners(teacher_onnx: Path) -> None:
    teacher = load_teacher(teacher_onnx, threads=2)
    runner = runtime_onnx.load(teacher_onnx, threads=2)
    assert _options(teacher.session) == _options(runner.session)  # type: ignore[attr-defined]
    assert _options(teacher.session) == (2, 1, 3, "GraphOptimizationLevel.ORT_ENABLE_ALL")  # type: ignore[attr-defined]
    assert teacher.session.get_providers() == list(runtime_onnx.DEFAULT_PROVIDERS)  # type: ignore[attr-defined]


def test_invalid_onnx_teacher_fails_with_the_runners_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / ("a-long-folder-name-" * 8) / "teacher.onnx"  # long enough to show any truncation
    bad.parent.mkdir()
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(ValueError) as from_runner:
        runtime_onnx.load(bad)
    with pytest.raises(InputError) as from_teacher:
        load_teacher(bad)
    message = str(from_teacher.value)
    assert message == str(from_runner.value)
    assert message.startswith(f"{bad}: not a loadable ONNX model (") and "\n" not in message
    assert from_teacher.value.exit_code == 2


def test_session_refuses_bad_threads_and_unavailable_providers(teacher_onnx: Path) -> None:
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        runtime_onnx.session(teacher_onnx, threads=0)
    with pytest.raises(ValueError) as err:
        runtime_onnx.session(teacher_onnx, providers=["NoSuchExecutionProvider"])
    message = str(err.value)
    assert message.startswith(f"{teacher_onnx}: execution provider(s) NoSuchExecutionProvider not available")
    assert "CPUExecutionProvider" in message and "\n" not in message
    assert runtime_onnx.session(teacher_onnx, threads=3).get_session_options().intra_op_num_threads == 3


def test_one_sha256_home_and_helpers(tmp_path: Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"first" * 300_000)  # more than one read block
    b.write_bytes(b"second")
    assert fileio.sha256_file is integrity.sha256_file
    assert fileio.sha256_files([a]) == fileio.sha256_file(a) == hashlib.sha256(a.read_bytes()).hexdigest()
    joined = a.read_bytes() + b.read_bytes() + b"v1"
    assert fileio.sha256_files([a, b], extra=b"v1") == hashlib.sha256(joined).hexdigest()
    assert fileio.sha256_bytes("é") == fileio.sha256_bytes("é".encode()) == hashlib.sha256("é".encode()).hexdigest()


def test_teacher_identities_are_unchanged_content_hashes(teacher_onnx: Path) -> None:
    teacher = load_teacher(teacher_onnx)
    digest = hashlib.sha256(teacher_onnx.read_bytes()).hexdigest()[:16]
    assert teacher.identity == f"onnx-{digest}-adv"
    ensemble = Ensemble([teacher, teacher], weights=[1, 3])
    expected = hashlib.sha256(f"{teacher.identity}+{teacher.identity}|0.25,0.75".encode()).hexdigest()[:16]
    assert ensemble.identity == f"ensemble-{expected}"


def test_rate_and_dimensions_have_one_home() -> None:
    assert audio.SAMPLING_RATE is spec.SAMPLING_RATE == 16_000
    assert metrics.DIMENSIONS is spec.DIMENSIONS == ("arousal", "dominance", "valence")
    assert spec.InputSpec().sampling_rate == spec.SAMPLING_RATE and spec.InputSpec().labels is spec.DIMENSIONS


def test_default_teacher_comes_from_defaults() -> None:
    from edgeser.defaults import default_teacher_path

    teacher = load_teacher("default")
    assert teacher.path == default_teacher_path()  # type: ignore[attr-defined]
    out = teacher(np.zeros((1, spec.SAMPLING_RATE), np.float32) + 0.01)
    assert out.shape == (1, len(spec.DIMENSIONS))
