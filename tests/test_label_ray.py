"""`edgeser label --engine ray` on a real two-node Ray cluster on this machine: the local engine's contract.

One cluster per module (two nodes of one CPU each, started with ``ray.cluster_utils.Cluster``); each run
joins it through ``--ray-address`` and leaves it running. The labels equal the local engine's, the cache
and resume work the same, unreadable files fail or are skipped the same, and an actor whose process is
killed mid-run is restarted with every file labelled exactly once.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

ray = pytest.importorskip("ray")

from edgeser.audio import list_audio  # noqa: E402
from edgeser.cli import app  # noqa: E402
from edgeser.label import LabelConfig, label  # noqa: E402

pytestmark = [pytest.mark.slow,
              # Ray's own deprecation notes about its own defaults (e.g. DataContext's shuffle settings)
              pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")]

ACTOR = b"MapWorker(MapBatches(TeacherActor))"
"""What Ray writes into the command line of a teacher actor's process."""


def _two_nodes():
    """A real two-node Ray cluster on this machine, one CPU each."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        c.add_node(num_cpus=1)
        c.wait_for_nodes()
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def cluster():
    yield from _two_nodes()


@pytest.fixture
def fresh_cluster():
    """A cluster of its own, for a test that must not inherit what earlier tests (a killed actor) left."""
    yield from _two_nodes()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _same_labels(a: Path, b: Path) -> None:
    ra, rb = _rows(a), _rows(b)
    assert [(r["file"], r["speaker"], r["window"], r["start_s"], r["sha256"], r["teacher"]) for r in ra] == \
        [(r["file"], r["speaker"], r["window"], r["start_s"], r["sha256"], r["teacher"]) for r in rb]
    values = [[float(r[k]) for k in ("arousal", "dominance", "valence")] for r in ra]
    np.testing.assert_allclose(values, [[float(r[k]) for k in ("arousal", "dominance", "valence")] for r in rb],
                               atol=1e-6, rtol=0)


def _label(args: list[str]):
    result = CliRunner().invoke(app, ["label", *args, "--window-seconds", "0.5", "-q"])
    # the run left the cluster (which keeps running)
    assert not ray.is_initialized(), (result.exit_code, result.exception, result.output)
    return result


def test_ray_on_two_nodes_gives_the_local_labels_and_resumes(tmp_path: Path, cluster, corpus: Path,
                                                             teacher_onnx: Path) -> None:
    local = _label([str(corpus), "--teacher", str(teacher_onnx), "--out", str(tmp_path / "local.csv")])
    assert local.exit_code == 0, local.output
    ray_args = [str(corpus), "--teacher", str(teacher_onnx), "--out", str(tmp_path / "ray.csv"), "--engine", "ray",
                "--ray-address", cluster.address, "--workers", "2", "--device", "cpu"]
    first = _label(ray_args)
    assert first.exit_code == 0, first.output
    assert "48 file(s), 96 window(s)" in first.stdout and "teacher ran on 96 window(s)" in first.stdout
    _same_labels(tmp_path / "local.csv", tmp_path / "ray.csv")
    # two teacher actors of one CPU each ran on the two one-CPU nodes, which are still up:
    assert sum(n.remaining_processes_alive() for n in cluster.list_all_nodes()) == 2
    (tmp_path / "ray.csv").unlink()  # as after an interrupted run: the cache has every file
    again = _label(ray_args)
    assert again.exit_code == 0, again.output
    assert "48 file(s) from the cache, teacher ran on 0 window(s)" in again.stdout
    _same_labels(tmp_path / "local.csv", tmp_path / "ray.csv")


def test_ray_labels_only_what_the_cache_lacks(tmp_path: Path, cluster, corpus: Path, teacher_onnx: Path) -> None:
    items = list_audio(corpus)
    config = LabelConfig(window_seconds=0.5, device="cpu")
    label(items[:30], str(teacher_onnx), tmp_path / "part.csv", config=config, cache=tmp_path / "c.sqlite")
    on_ray = LabelConfig(window_seconds=0.5, device="cpu", engine="ray", ray_address=cluster.address, workers=2)
    result = label(items, str(teacher_onnx), tmp_path / "all.csv", config=on_ray, cache=tmp_path / "c.sqlite")
    assert (result.cached_files, result.teacher_windows, result.files) == (30, 36, 48)
    label(items, str(teacher_onnx), tmp_path / "local.csv", config=config)
    _same_labels(tmp_path / "local.csv", tmp_path / "all.csv")


def test_ray_errors_and_skip_errors_match_the_local_engine(tmp_path: Path, cluster, corpus: Path,
                                                           teacher_onnx: Path) -> None:
    folder = tmp_path / "audio"
    folder.mkdir()
    for f in sorted(corpus.parent.glob("*.flac"))[:5]:
        shutil.copy(f, folder)
    (folder / "broken.flac").write_bytes(b"not audio at all" * 64)
    outputs = {}
    for engine in ("local", "ray"):
        extra = ["--engine", "ray", "--ray-address", cluster.address, "--workers", "2"] if engine == "ray" else []
        base = [str(folder), "--teacher", str(teacher_onnx), "--device", "cpu", *extra]
        failed = _label([*base, "--out", str(tmp_path / f"{engine}-failed.csv")])
        assert failed.exit_code == 2, failed.output
        assert f"{folder / 'broken.flac'}: " in failed.stderr and failed.stderr.count("\n") == 1, failed.stderr
        assert not (tmp_path / f"{engine}-failed.csv").exists()
        skipped = _label([*base, "--out", str(tmp_path / f"{engine}.csv"), "--skip-errors"])
        assert skipped.exit_code == 0, skipped.output
        assert "labelled 5 file(s)" in skipped.stdout
        outputs[engine] = [line for line in skipped.stdout.splitlines() if line.startswith("skipped")]
    assert outputs["ray"] == outputs["local"] and len(outputs["ray"]) == 1 and "broken.flac" in outputs["ray"][0]
    _same_labels(tmp_path / "local.csv", tmp_path / "ray.csv")


def _slow_teacher(path: Path) -> Path:
    """An ONNX teacher that takes about a second per batch of 16 half-second windows on one core."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    width, layers = 1024, 200
    inits = [numpy_helper.from_array((rng.standard_normal((8000, width)) / 90).astype(np.float32), "w_in"),
             numpy_helper.from_array((rng.standard_normal((width, width)) / 32).astype(np.float32), "w"),
             numpy_helper.from_array((rng.standard_normal((width, 3)) / 32).astype(np.float32), "w_out")]
    nodes = [helper.make_node("MatMul", ["waveform", "w_in"], ["h0"])]
    for i in range(layers):
        nodes += [helper.make_node("MatMul", [f"h{i}", "w"], [f"m{i}"]),
                  helper.make_node("Tanh", [f"m{i}"], [f"h{i + 1}"])]
    nodes += [helper.make_node("MatMul", [f"h{layers}", "w_out"], ["z"]),
              helper.make_node("Sigmoid", ["z"], ["logits"])]
    inputs = [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["n", 8000])]
    graph = helper.make_graph(nodes, "slow", inputs,
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _pids(start: bytes) -> list[int]:
    """Processes whose command line starts with ``start``."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmdline = (Path("/proc") / name / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(start):
                pids.append(int(name))
    return pids


def _actor_pids() -> list[int]:
    return _pids(b"ray::" + ACTOR)


def _gcs_servers() -> int:
    """Ray instances running on this machine (each has one GCS server)."""
    return sum(b"gcs_server" in (Path("/proc") / str(p) / "cmdline").read_bytes().split(b"\0")[0]
               for p in _pids(b"/"))


def _stored(cache: Path) -> int:
    try:
        with sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=0.1) as db:
            return int(db.execute("SELECT count(*) FROM labels").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_a_killed_actor_is_restarted_and_every_file_is_labelled_once(
    tmp_path: Path, cluster, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgeser.label import ray_engine
    from edgeser.label.workers import FILES_PER_TASK

    monkeypatch.setattr(ray_engine, "BLOCK_FILES", FILES_PER_TASK)  # results arrive a batch at a time
    teacher = _slow_teacher(tmp_path / "slow.onnx")
    items = list_audio(corpus)
    cache = tmp_path / "ray.csv.cache.sqlite"
    config = LabelConfig(window_seconds=0.5, device="cpu", engine="ray", ray_address=cluster.address, workers=1)
    killed: list[tuple[int, int]] = []
    finished = threading.Event()

    def kill_mid_run() -> None:
        while not finished.is_set() and not killed:
            done, pids = _stored(cache), _actor_pids()
            if 0 < done < len(items) and pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append((pids[0], done))
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_mid_run, daemon=True)
    watcher.start()
    try:
        result = label(items, str(teacher), tmp_path / "ray.csv", config=config)
    finally:
        finished.set()
        watcher.join()
    assert killed, "the run finished before an actor could be killed"
    assert result.files == 48 and result.teacher_windows == 96  # every file stored once
    rows = _rows(tmp_path / "ray.csv")
    assert [Path(r["file"]).name for r in rows[::2]] == [it.path.name for it in items]  # each once, in order
    label(items, str(teacher), tmp_path / "local.csv", config=LabelConfig(window_seconds=0.5, device="cpu"))
    _same_labels(tmp_path / "local.csv", tmp_path / "ray.csv")


def test_without_an_address_a_local_instance_is_started_and_stopped(tmp_path: Path, corpus: Path,
                                                                    teacher_onnx: Path) -> None:
    files = sorted(corpus.parent.glob("*.flac"))[:3]
    before = _gcs_servers()
    result = _label([*map(str, files), "--teacher", str(teacher_onnx), "--out", str(tmp_path / "l.csv"),
                     "--engine", "ray", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "labelled 3 file(s), 6 window(s)" in result.stdout
    deadline = time.monotonic() + 30
    while _gcs_servers() > before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _gcs_servers() == before  # the instance it started is gone


class _Interrupt:
    """A progress reporter that presses Ctrl-C once the first batch of results is stored."""

    def start(self, description: str, total: int | None = None, *, info: str = "") -> int:
        return 0

    def advance(self, task: int, amount: int = 1, *, info: str | None = None) -> None:
        raise KeyboardInterrupt

    def note(self, task: int, info: str) -> None:
        pass

    def finish(self, task: int) -> None:
        pass


INTERRUPTED_RUN = """
import sys
import ray
from test_label_ray import _Interrupt
from edgeser.audio import list_audio
from edgeser.label import LabelConfig, label
corpus, teacher, out, address = sys.argv[1:]
config = LabelConfig(window_seconds=0.5, device="cpu", engine="ray", ray_address=address, workers=2)
try:
    label(list_audio(corpus), teacher, out, config=config, progress=_Interrupt())
except KeyboardInterrupt:
    print("interrupted; ray connected:", ray.is_initialized(), flush=True)
"""
"""A run that presses Ctrl-C once the first batch is stored (the reporter raises it)."""


def test_an_interrupted_ray_run_leaves_ray_and_resumes_from_the_cache(tmp_path: Path, fresh_cluster, corpus: Path,
                                                                      teacher_onnx: Path) -> None:
    cluster = fresh_cluster
    items = list_audio(corpus)
    # Each run in a process of its own, as a user's runs are (Ray keeps per-process state across connections).
    interrupted = subprocess.run([sys.executable, "-c", INTERRUPTED_RUN, str(corpus), str(teacher_onnx),
                                  str(tmp_path / "l.csv"), cluster.address], capture_output=True, text=True,
                                 timeout=300, cwd=Path(__file__).parent,
                                 # Ray's own errors on stderr, should the process end early (as it once did)
                                 env={**os.environ, "RAY_BACKEND_LOG_LEVEL": "error"})
    assert interrupted.returncode == 0 and "interrupted; ray connected: False" in interrupted.stdout, \
        interrupted.stdout + interrupted.stderr
    assert not (tmp_path / "l.csv").exists()
    stored = _stored(tmp_path / "l.csv.cache.sqlite")
    assert 0 < stored < len(items)
    # The user runs the command again: a new process (as after Ctrl-C), joining the same cluster.
    run = subprocess.run([sys.executable, "-c", "from edgeser.cli import app; app()", "label", str(corpus),
                          "--teacher", str(teacher_onnx), "--out", str(tmp_path / "l.csv"), "--window-seconds",
                          "0.5", "--device", "cpu", "--engine", "ray", "--ray-address", cluster.address,
                          "--workers", "2", "--quiet"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    summary = re.search(r"\((\d+) file\(s\) from the cache, teacher ran on (\d+) window\(s\)\)", run.stdout)
    assert summary is not None, run.stdout
    assert int(summary[1]) == stored and int(summary[2]) == 2 * (len(items) - stored)
    assert sum(n.remaining_processes_alive() for n in cluster.list_all_nodes()) == 2  # the cluster runs on
