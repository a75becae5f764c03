"""Labelling: CSV content, cache hits, resume after an interruption, parallel workers, errors, CLI."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from edgeser.audio import AudioItem, list_audio
from edgeser.cli import app
from edgeser.errors import InputError
from edgeser.label import COLUMNS, LabelConfig, file_sha256, label, read_labels
from edgeser.metrics import ccc
from edgeser.teachers import load_teacher

HALF_SECOND = LabelConfig(window_seconds=0.5, batch_size=8)


class Counting:
    """Wraps a teacher and counts how many windows it is asked to label; can stop after some calls."""

    sample_rate = 16_000

    def __init__(self, inner: object, *, interrupt_after: int | None = None) -> None:
        self.inner = inner
        self.name = "counting"
        self.identity = inner.identity  # type: ignore[attr-defined]
        self.calls = 0
        self.windows = 0
        self.interrupt_after = interrupt_after

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self.interrupt_after is not None and self.calls >= self.interrupt_after:
            raise KeyboardInterrupt
        self.calls += 1
        self.windows += len(batch)
        return self.inner(batch)  # type: ignore[operator]


@pytest.fixture
def items(corpus: Path) -> list[AudioItem]:
    return list_audio(corpus)[:12]


@pytest.fixture
def teacher(teacher_onnx: Path) -> Counting:
    return Counting(load_teacher(teacher_onnx))


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_label_writes_one_row_per_window(tmp_path: Path, items: list[AudioItem], teacher: Counting) -> None:
    out = tmp_path / "labels.csv"
    result = label(items, teacher, out, config=HALF_SECOND)
    rows = _rows(out)
    assert list(rows[0]) == list(COLUMNS)
    assert result.rows == len(rows) == 2 * len(items)  # 1-s clips, 0.5-s windows
    assert teacher.windows == len(rows)
    assert [r["window"] for r in rows[:2]] == ["0", "1"] and [r["start_s"] for r in rows[:2]] == [
        "0.0000",
        "0.5000",
    ]
    assert rows[0]["speaker"] == items[0].speaker and rows[0]["sha256"] == file_sha256(items[0].path)
    values = np.array([[float(r[d]) for d in ("arousal", "dominance", "valence")] for r in rows])
    assert ((values >= 0) & (values <= 1)).all() and values.std(0).min() > 0
    expected = teacher.inner(np.stack([sf.read(items[0].path, dtype="float32")[0][:8000]]))[0]
    np.testing.assert_allclose(values[0], expected, atol=1e-5)


def test_rerun_hits_the_cache(tmp_path: Path, items: list[AudioItem], teacher: Counting) -> None:
    out = tmp_path / "labels.csv"
    label(items, teacher, out, config=HALF_SECOND)
    first, calls = out.read_text(), teacher.calls
    again = label(
        items, teacher, tmp_path / "again.csv", config=HALF_SECOND, cache=tmp_path / "labels.csv.cache.sqlite"
    )
    assert teacher.calls == calls  # not called again
    assert again.cached_files == len(items) and again.teacher_windows == 0
    assert (tmp_path / "again.csv").read_text() == first


def test_cache_is_keyed_by_content_and_window(
    tmp_path: Path, items: list[AudioItem], teacher: Counting
) -> None:
    out = tmp_path / "labels.csv"
    label(items[:2], teacher, out, config=HALF_SECOND)
    moved = tmp_path / "renamed.flac"
    shutil.copy(items[0].path, moved)  # same bytes, new name: still cached
    label([AudioItem(moved)], teacher, out, config=HALF_SECOND)
    assert teacher.windows == 4
    label(items[:2], teacher, out, config=LabelConfig(window_seconds=1.0))  # another window: labelled anew
    assert teacher.windows == 6


def test_resume_after_interruption_keeps_finished_files(
    tmp_path: Path, items: list[AudioItem], teacher_onnx: Path
) -> None:
    out = tmp_path / "labels.csv"
    stopping = Counting(load_teacher(teacher_onnx), interrupt_after=2)  # one task (8 files, 2 calls) finishes
    with pytest.raises(KeyboardInterrupt):
        label(items, stopping, out, config=HALF_SECOND)
    assert not out.exists()
    resumed = Counting(load_teacher(teacher_onnx))
    result = label(items, resumed, out, config=HALF_SECOND)
    assert result.cached_files == 8 and resumed.windows == 2 * (len(items) - 8)
    reference = tmp_path / "reference.csv"
    label(items, Counting(load_teacher(teacher_onnx)), reference, config=HALF_SECOND)
    assert out.read_text() == reference.read_text()


def test_thread_workers_give_the_same_labels(
    tmp_path: Path, items: list[AudioItem], teacher: Counting
) -> None:
    label(items, teacher, tmp_path / "one.csv", config=HALF_SECOND)
    two = LabelConfig(window_seconds=0.5, batch_size=8, workers=2)
    label(items, teacher, tmp_path / "two.csv", config=two, cache=tmp_path / "other.sqlite")
    assert (tmp_path / "one.csv").read_text() == (tmp_path / "two.csv").read_text()


@pytest.mark.slow
def test_process_workers_give_the_same_labels(
    tmp_path: Path, items: list[AudioItem], teacher_onnx: Path
) -> None:
    label(items, str(teacher_onnx), tmp_path / "one.csv", config=HALF_SECOND)
    two = LabelConfig(window_seconds=0.5, batch_size=8, workers=2)
    label(items, str(teacher_onnx), tmp_path / "two.csv", config=two, cache=tmp_path / "other.sqlite")
    assert (tmp_path / "one.csv").read_text() == (tmp_path / "two.csv").read_text()


def test_long_file_gets_several_windows_with_hop(tmp_path: Path, teacher: Counting) -> None:
    t = np.arange(16_000 * 3) / 16_000
    path = tmp_path / "long.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + t)).astype(np.float32) / 4, 16_000)
    label(
        [AudioItem(path)],
        teacher,
        tmp_path / "l.csv",
        config=LabelConfig(window_seconds=1.0, hop_seconds=0.5),
    )
    rows = _rows(tmp_path / "l.csv")
    assert [float(r["start_s"]) for r in rows] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert rows[0]["file"] == "long.wav" and rows[0]["speaker"] == ""  # relative to the CSV's folder


def test_bad_audio_names_the_file(tmp_path: Path, items: list[AudioItem], teacher: Counting) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(InputError, match="broken.wav: cannot read audio"):
        label([*items[:2], AudioItem(bad)], teacher, tmp_path / "labels.csv", config=HALF_SECOND)
    skipped = label(
        [*items[:2], AudioItem(bad)],
        teacher,
        tmp_path / "labels.csv",
        config=LabelConfig(window_seconds=0.5, skip_errors=True),
    )
    assert skipped.files == 2 and len(skipped.skipped) == 1 and "broken.wav" in skipped.skipped[0]


def test_read_labels_round_trip(tmp_path: Path, items: list[AudioItem], teacher: Counting) -> None:
    out = tmp_path / "labels.csv"
    label(items, teacher, out, config=HALF_SECOND)
    table = read_labels(out)
    assert len(table) == 2 * len(items) and table.targets.shape == (len(table), 3)
    assert table.files[0] == items[0].path and table.teacher == teacher.identity
    assert np.allclose(table.duration_s, 0.5)


def _write(path: Path, header: str, *lines: str) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def test_read_labels_errors(tmp_path: Path, items: list[AudioItem]) -> None:
    audio = items[0].path
    with pytest.raises(InputError, match=r"lacks column\(s\) dominance, valence"):
        read_labels(_write(tmp_path / "a.csv", "file,start_s,duration_s,arousal", f"{audio},0,1,0.5"))
    with pytest.raises(InputError, match="line 3: valence is nan"):
        read_labels(
            _write(
                tmp_path / "b.csv",
                "file,start_s,duration_s,arousal,dominance,valence",
                f"{audio},0,1,0.5,0.5,0.5",
                f"{audio},0,1,0.5,0.5,nan",
            )
        )
    with pytest.raises(InputError, match="line 2: audio file .*gone.wav is missing"):
        read_labels(
            _write(
                tmp_path / "c.csv",
                "file,start_s,duration_s,arousal,dominance,valence",
                "gone.wav,0,1,0.5,0.5,0.5",
            )
        )
    with pytest.raises(InputError, match="no rows"):
        read_labels(_write(tmp_path / "d.csv", "file,start_s,duration_s,arousal,dominance,valence"))
    with pytest.raises(InputError, match="labels file not found"):
        read_labels(tmp_path / "none.csv")


def test_cli_label(tmp_path: Path, corpus: Path, teacher_onnx: Path) -> None:
    out = tmp_path / "labels.csv"
    args = [
        "label",
        str(corpus),
        "--teacher",
        str(teacher_onnx),
        "--out",
        str(out),
        "--window-seconds",
        "0.5",
    ]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "48 file(s), 96 window(s)" in first.output and len(_rows(out)) == 96
    assert "labelling" in first.stderr and "files/s" in first.stderr  # the progress bar, on stderr
    second = CliRunner().invoke(app, [*args, "--overwrite"])
    assert second.exit_code == 0 and "48 file(s) from the cache" in second.output


def test_cli_label_refuses_an_existing_output_and_resumes_through_the_cache(
    tmp_path: Path, corpus: Path, teacher_onnx: Path
) -> None:
    out = tmp_path / "labels.csv"
    args = ["label", str(corpus), "--teacher", str(teacher_onnx), "--out", str(out), "--window-seconds", "0.5", "-q"]
    quiet = CliRunner().invoke(app, args)
    assert quiet.exit_code == 0 and quiet.stderr == "" and "48 file(s)" in quiet.stdout
    before = out.read_bytes()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 5 and f"{out}: output exists already (use --overwrite" in again.output
    assert out.read_bytes() == before
    out.unlink()  # as after an interrupted run: the cache holds finished files, there is no CSV yet
    resumed = CliRunner().invoke(app, args)
    assert resumed.exit_code == 0 and "48 file(s) from the cache, teacher ran on 0 window(s)" in resumed.output
    assert out.read_bytes() == before


@pytest.mark.parametrize("which", ["audio", "list", "cache"])
def test_cli_label_never_writes_over_an_input(tmp_path: Path, corpus: Path, teacher_onnx: Path, which: str) -> None:
    keep = tmp_path / "keep.wav"
    shutil.copy(corpus.parent / "spk0_000.flac", keep)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{corpus.parent / 'spk0_001.flac'}\n", encoding="utf-8")
    originals = {p: p.read_bytes() for p in (keep, listing)}
    base = ["label", str(keep), str(listing), "--teacher", str(teacher_onnx), "--window-seconds", "0.5"]
    target = {"audio": ["--out", str(keep), "--overwrite"], "list": ["--out", str(listing), "--overwrite"],
              "cache": ["--out", str(tmp_path / "labels.csv"), "--cache", str(keep)]}[which]
    result = CliRunner().invoke(app, [*base, *target])
    assert result.exit_code == 5, result.output
    assert "is also an input of this command" in result.output
    assert {p: p.read_bytes() for p in originals} == originals
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.wav", "list.txt"]  # no labels, no cache


def test_label_refuses_an_audio_file_as_its_output_or_cache(
    tmp_path: Path, items: list[AudioItem], teacher: Counting
) -> None:
    from edgeser.errors import OutputError

    copies = [AudioItem(Path(shutil.copy(it.path, tmp_path)), it.speaker) for it in items[:2]]  # never the corpus
    before = [it.path.read_bytes() for it in copies]
    with pytest.raises(OutputError, match="is also an input of this command"):
        label(copies, teacher, copies[0].path, config=HALF_SECOND)
    with pytest.raises(OutputError, match="is also an input of this command"):
        label(copies, teacher, tmp_path / "labels.csv", config=HALF_SECOND, cache=copies[1].path)
    with pytest.raises(OutputError, match="cannot be the labels file itself"):
        label(copies, teacher, tmp_path / "labels.csv", config=HALF_SECOND, cache=tmp_path / "labels.csv")
    assert [it.path.read_bytes() for it in copies] == before and teacher.calls == 0


def test_cli_label_errors(tmp_path: Path, teacher_onnx: Path) -> None:
    missing = CliRunner().invoke(app, ["label", str(tmp_path / "nope"), "--teacher", str(teacher_onnx)])
    assert missing.exit_code == 2 and "audio source not found" in missing.output
    bad_teacher = CliRunner().invoke(app, ["label", str(tmp_path), "--teacher", str(tmp_path / "t.onnx")])
    assert bad_teacher.exit_code == 2


def test_the_embedded_teacher_labels_the_built_in_calibration_set(tmp_path: Path) -> None:
    from edgeser.defaults import calibration_list_path, default_teacher_path

    items = list_audio(calibration_list_path())
    assert len(items) == 124 and {it.speaker for it in items} == {"11", "14"}
    folder = calibration_list_path().parent
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 5_000_000
    teacher = load_teacher("default")
    assert teacher.identity == load_teacher(default_teacher_path()).identity
    result = label(items[::8], teacher, tmp_path / "calibration.csv", config=LabelConfig(window_seconds=2.0))
    table = read_labels(tmp_path / "calibration.csv")
    assert result.rows == len(table) == 16
    assert ((table.targets >= 0) & (table.targets <= 1)).all()
    emotions = {r["file"]: r["emotion"] for r in _rows(calibration_list_path())}
    arousal = {emotions[f.name]: a for f, a in zip(table.files, table.targets[:, 0], strict=True)}
    if "anger" in arousal and "sadness" in arousal:
        assert arousal["anger"] > arousal["sadness"]


def test_thread_parallel_with_a_teacher_path(tmp_path: Path, items: list[AudioItem], teacher_onnx: Path) -> None:
    label(items, str(teacher_onnx), tmp_path / "one.csv", config=HALF_SECOND)
    threads = LabelConfig(window_seconds=0.5, batch_size=8, workers=2, parallel="thread")
    label(items, str(teacher_onnx), tmp_path / "two.csv", config=threads, cache=tmp_path / "other.sqlite")
    assert (tmp_path / "one.csv").read_text() == (tmp_path / "two.csv").read_text()
    with pytest.raises(InputError, match="--parallel must be one of"):
        label(items, str(teacher_onnx), tmp_path / "x.csv", config=LabelConfig(parallel="fork"))


def test_the_embedded_teacher_meets_its_model_card_on_unseen_speakers(tmp_path: Path) -> None:
    """Speakers 11 and 14 were held out of the teacher's training: CCC against the category targets
    (docs/model-cards/reference-teacher.md reports 0.826 / 0.876 / 0.463) stays above the issue's goals."""
    from edgeser.defaults import CATEGORY_ADV, calibration_list_path

    label(list_audio(calibration_list_path()), "default", tmp_path / "cal.csv", config=LabelConfig(window_seconds=2.0))
    table = read_labels(tmp_path / "cal.csv")
    emotions = {r["file"]: r["emotion"] for r in _rows(calibration_list_path())}
    truth = np.array([CATEGORY_ADV[emotions[f.name]] for f in table.files])
    arousal, dominance, valence = ccc(table.targets, truth)
    assert arousal > 0.75 and dominance > 0.6 and valence > 0.4, (arousal, dominance, valence)


def test_a_teacher_that_fails_on_a_batch_names_itself_and_the_shape() -> None:
    """The reference teacher needs 40 ms for its pitch frames: a shorter window is a clear InputError."""
    teacher = load_teacher("default")
    with pytest.raises(InputError, match=r"teacher failed on a batch of shape \(2, 300\)") as info:
        teacher(np.zeros((2, 300), np.float32))
    assert "reference_teacher.onnx" in str(info.value)


# --------------------------------------------------------------------------- user files


def test_an_audio_list_in_latin1_is_one_line_in_label(tmp_path: Path, corpus: Path, teacher_onnx: Path) -> None:
    listing = tmp_path / "list.csv"
    listing.write_bytes(corpus.read_text(encoding="utf-8").replace("spk0", "Zoé").encode("latin-1"))
    result = CliRunner().invoke(app, ["label", str(listing), "--teacher", str(teacher_onnx),
                                      "--out", str(tmp_path / "labels.csv")])
    assert result.exit_code == 2, result.output
    assert f"{listing}: audio list is not UTF-8 text" in result.output and "save it as UTF-8" in result.output
    assert not (tmp_path / "labels.csv").exists() and not (tmp_path / "labels.csv.cache.sqlite").exists()


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
def test_spreadsheet_encodings_with_a_bom_read_like_utf8(tmp_path: Path, corpus: Path, encoding: str) -> None:
    audio = corpus.parent / "spk0_000.flac"
    (tmp_path / "list.csv").write_text(f"file,speaker\n{audio},Zoë\n", encoding=encoding)
    (tmp_path / "list.txt").write_text(f"{audio}\n", encoding=encoding)
    assert list_audio(tmp_path / "list.csv") == [AudioItem(audio, "Zoë")]
    assert list_audio(tmp_path / "list.txt") == [AudioItem(audio)]


def test_a_labels_csv_in_utf16_or_latin1(tmp_path: Path, items: list[AudioItem], teacher: Counting) -> None:
    out = tmp_path / "labels.csv"
    label(items[:2], teacher, out, config=HALF_SECOND)
    text = out.read_text(encoding="utf-8")
    utf16 = tmp_path / "utf16.csv"
    utf16.write_text(text, encoding="utf-16")
    assert read_labels(utf16).files == read_labels(out).files
    latin = tmp_path / "latin.csv"
    latin.write_bytes((text + f"{items[0].path},Zoé,0,0,0.5,0.1,0.2,0.3,,\n").encode("latin-1"))
    with pytest.raises(InputError, match=r"latin.csv: labels file is not UTF-8 text: byte 0xe9 at offset \d+"):
        read_labels(latin)


def test_a_cache_with_another_schema_is_one_input_error(
    tmp_path: Path, items: list[AudioItem], teacher: Counting
) -> None:
    import sqlite3

    cache = tmp_path / "cache.sqlite"
    db = sqlite3.connect(cache)
    db.execute("CREATE TABLE labels (sha256 TEXT, teacher TEXT)")
    db.close()
    with pytest.raises(InputError, match="cache.sqlite: label cache has another layout"):
        label(items[:1], teacher, tmp_path / "labels.csv", config=HALF_SECOND, cache=cache)
    cache.write_bytes(b"my notes, not a database\n" * 20)
    with pytest.raises(InputError, match="cache.sqlite: label cache is not a SQLite database"):
        label(items[:1], teacher, tmp_path / "labels.csv", config=HALF_SECOND, cache=cache)
    assert cache.read_bytes() == b"my notes, not a database\n" * 20 and not (tmp_path / "labels.csv").exists()
    result = CliRunner().invoke(app, ["label", str(items[0].path), "--teacher", "default", "--out",
                                      str(tmp_path / "labels.csv"), "--cache", str(cache)])
    assert result.exit_code == 2 and "not a SQLite database" in result.output


def test_a_corrupt_cache_entry_is_one_input_error(tmp_path: Path, items: list[AudioItem], teacher: Counting) -> None:
    import sqlite3

    cache = tmp_path / "cache.sqlite"
    label(items[:1], teacher, tmp_path / "labels.csv", config=HALF_SECOND, cache=cache)
    db = sqlite3.connect(cache)
    db.execute("UPDATE labels SET value = '[[0, 1, 2'")
    db.commit()
    db.close()
    with pytest.raises(InputError, match="cache.sqlite: corrupt label cache entry"):
        label(items[:1], teacher, tmp_path / "labels.csv", config=HALF_SECOND, cache=cache)


def test_a_failed_first_input_leaves_no_cache_behind(tmp_path: Path, items: list[AudioItem], teacher: Counting) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio at all")
    out = tmp_path / "labels.csv"
    with pytest.raises(InputError, match="broken.wav"):
        label([AudioItem(bad)], teacher, out, config=HALF_SECOND)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.wav"]
    label(items[:1], teacher, out, config=HALF_SECOND)  # a cache that holds something is kept, even on failure
    with pytest.raises(InputError, match="broken.wav"):
        label([AudioItem(bad)], teacher, tmp_path / "other.csv", config=HALF_SECOND, cache=tmp_path / "labels.csv"
              ".cache.sqlite")
    assert (tmp_path / "labels.csv.cache.sqlite").is_file()


@pytest.mark.parametrize(("start", "duration", "message"), [
    ("-5", "0.5", "line 3: start_s must be 0 or more, got -5"),
    ("1e12", "0.5", r"line 3: start_s 1e12 is past the end of spk0_000.flac \(1.000 s\)"),
    ("1.0", "0.5", r"line 3: start_s 1.0 is past the end of spk0_000.flac"),
    ("0", "0", "line 3: duration_s must be more than 0, got 0"),
    ("0", "-1", "line 3: duration_s must be more than 0"),
    ("0", "inf", "line 3: duration_s is inf"),
    ("nan", "0.5", "line 3: start_s is nan"),
    ("0", "1e9", r"line 3: duration_s must be at most 60 s, got 1e\+09"),
])
def test_impossible_label_rows_are_refused(
    tmp_path: Path, items: list[AudioItem], start: str, duration: str, message: str
) -> None:
    audio = items[0].path
    path = _write(tmp_path / "rows.csv", "file,start_s,duration_s,arousal,dominance,valence",
                  f"{audio},0,0.5,0.5,0.5,0.5", f"{audio},{start},{duration},0.5,0.5,0.5")
    with pytest.raises(InputError, match=message) as err:
        read_labels(path)
    assert err.value.path == path
    if "past the end" not in message:
        return
    assert len(read_labels(path, check_audio=False)) == 2  # the audio's length is known only when it is checked


def test_an_unusable_audio_name_in_labels_is_one_input_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "rows.csv", "file,start_s,duration_s,arousal,dominance,valence",
                  f"{'x' * 300}.wav,0,0.5,0.5,0.5,0.5")
    with pytest.raises(InputError, match="rows.csv: line 2: audio file .* cannot be read"):
        read_labels(path)


# --------------------------------------------------------------------------- devices, manifests, Parquet


def test_cli_label_on_cuda_without_it_is_one_line_exit_2(tmp_path: Path, corpus: Path, teacher_onnx: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    base = ["label", str(corpus), "--teacher", str(teacher_onnx), "--out", str(tmp_path / "l.csv")]
    for extra in (["--device", "cuda"], ["--device", "cuda:3"], ["--precision", "bf16"],
                  ["--engine", "ray", "--gpus-per-worker", "1"]):
        result = CliRunner().invoke(app, [*base, *extra])
        assert result.exit_code == 2, (extra, result.output)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
        assert "CUDA" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_cli_label_refuses_ray_options_without_the_ray_engine(tmp_path: Path, corpus: Path) -> None:
    result = CliRunner().invoke(app, ["label", str(corpus), "--ray-address", "auto", "--out", str(tmp_path / "l.csv")])
    assert result.exit_code == 2 and "need --engine ray" in result.stderr
    neither = CliRunner().invoke(app, ["label", "--out", str(tmp_path / "l.csv")])
    assert neither.exit_code == 2 and "nothing to label" in neither.stderr
    both = CliRunner().invoke(app, ["label", str(corpus), "--manifest", str(corpus)])
    assert both.exit_code == 2 and "not both" in both.stderr


class PaddingAware(Counting):
    """A teacher that is told the valid length of padded windows, and returns it as its arousal."""

    padding_aware = True

    def __call__(self, batch: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        out = super().__call__(batch)
        out[:, 0] = batch.shape[1] if lengths is None else lengths
        return out


def test_a_padding_aware_teacher_is_told_the_length_of_a_short_file(tmp_path: Path, teacher_onnx: Path) -> None:
    short = tmp_path / "short.wav"
    sf.write(short, np.full(3000, 0.1, np.float32), 16_000)
    long = tmp_path / "long.wav"
    sf.write(long, np.full(16_000, 0.1, np.float32), 16_000)
    teacher = PaddingAware(load_teacher(teacher_onnx))
    label([AudioItem(long), AudioItem(short)], teacher, tmp_path / "l.csv", config=HALF_SECOND)
    assert [float(r["arousal"]) for r in _rows(tmp_path / "l.csv")] == [8000, 8000, 3000]


def _manifest_csv(path: Path, corpus: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("speaker,file\n" + "".join(f"{s},{corpus.parent / f}\n" for f, s in rows), encoding="utf-8")
    return path


def test_a_manifest_gives_the_labels_of_the_same_list(tmp_path: Path, corpus: Path, teacher_onnx: Path) -> None:
    from edgeser.label import Manifest

    items = list_audio(corpus)[:10]
    rows = [(it.path.name, it.speaker or "") for it in items]
    manifest = Manifest.open(_manifest_csv(tmp_path / "m.csv", corpus, rows))
    listed = label(items, str(teacher_onnx), tmp_path / "list.csv", config=HALF_SECOND)
    streamed = label(manifest, str(teacher_onnx), tmp_path / "manifest.csv", config=HALF_SECOND,
                     cache=tmp_path / "other.sqlite")
    assert (tmp_path / "list.csv").read_bytes() == (tmp_path / "manifest.csv").read_bytes()
    assert streamed.files == listed.files == 10 and streamed.teacher_windows == listed.teacher_windows == 20


def test_a_manifest_is_read_in_chunks_and_each_content_labelled_once(
    tmp_path: Path, corpus: Path, teacher_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgeser.label import Manifest, manifest

    monkeypatch.setattr(manifest, "CHUNK_ROWS", 7)
    names = [it.path.name for it in list_audio(corpus)[:3]]
    rows = [(names[i % 3], f"s{i % 2}") for i in range(50)]  # 50 rows, 3 files
    teacher = Counting(load_teacher(teacher_onnx))
    result = label(Manifest.open(_manifest_csv(tmp_path / "m.csv", corpus, rows)), teacher, tmp_path / "l.csv",
                   config=HALF_SECOND)
    assert teacher.windows == 6 and result.teacher_windows == 6  # each of the 3 files once
    out = _rows(tmp_path / "l.csv")
    assert result.files == 50 and len(out) == 100
    assert [(Path(r["file"]).name, r["speaker"]) for r in out[::2]] == rows


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_parquet_and_csv_outputs_hold_the_same_labels(
    tmp_path: Path, items: list[AudioItem], teacher: Counting, suffix: str
) -> None:
    label(items, teacher, tmp_path / "a.csv", config=HALF_SECOND)
    label(items, teacher, tmp_path / f"b{suffix}", config=HALF_SECOND, cache=tmp_path / "a.csv.cache.sqlite")
    a, b = read_labels(tmp_path / "a.csv"), read_labels(tmp_path / f"b{suffix}")
    assert a.files == b.files and a.speakers == b.speakers and a.sha256 == b.sha256 and a.teacher == b.teacher
    np.testing.assert_array_equal(a.targets, b.targets)
    np.testing.assert_array_equal(a.start_s, b.start_s)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        assert tuple(pq.read_schema(tmp_path / "b.parquet").names) == COLUMNS


def test_a_parquet_manifest(tmp_path: Path, corpus: Path, teacher_onnx: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from edgeser.label import Manifest

    items = list_audio(corpus)[:6]
    pq.write_table(pa.table({"file": [it.path.name for it in items], "speaker": [it.speaker for it in items]}),
                   corpus.parent / "m.parquet")
    try:
        label(Manifest.open(corpus.parent / "m.parquet"), str(teacher_onnx), tmp_path / "p.csv", config=HALF_SECOND)
    finally:
        (corpus.parent / "m.parquet").unlink()
    label(items, str(teacher_onnx), tmp_path / "l.csv", config=HALF_SECOND, cache=tmp_path / "x.sqlite")
    assert (tmp_path / "p.csv").read_bytes() == (tmp_path / "l.csv").read_bytes()


def test_manifest_errors_are_one_line(tmp_path: Path, corpus: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from edgeser.label import Manifest

    cases = {
        "a.txt": ("x\n", "must be a .csv or .parquet"),
        "b.csv": ("name\nx.wav\n", r"needs a 'file' column \(has: name\)"),
        "c.csv": ("file\n", "manifest has no rows"),
        "d.csv": ("file,speaker\n,s\n", "line 2: the file column is empty"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        with pytest.raises(InputError, match=message) as err:
            list(Manifest.open(tmp_path / name).chunks())
        assert str(tmp_path / name) in str(err.value)
    (tmp_path / "e.csv").write_bytes(b"file\n\xff.wav\n")
    with pytest.raises(InputError, match="save it as UTF-8"):
        Manifest.open(tmp_path / "e.csv")
    pq.write_table(pa.table({"file": [1, 2]}), tmp_path / "f.parquet")
    with pytest.raises(InputError, match="'file' must hold text"):
        Manifest.open(tmp_path / "f.parquet")
    (tmp_path / "g.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="unreadable Parquet manifest"):
        Manifest.open(tmp_path / "g.parquet")
    with pytest.raises(InputError, match="manifest not found"):
        Manifest.open(tmp_path / "none.csv")


def test_parquet_without_pyarrow_names_the_extra(tmp_path: Path, items: list[AudioItem], teacher: Counting,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(InputError, match=r"pip install 'edgeser\[ray\]'") as err:
        label(items, teacher, tmp_path / "l.parquet", config=HALF_SECOND)
    assert str(tmp_path / "l.parquet") in str(err.value) and teacher.calls == 0
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(InputError, match=r"pip install 'edgeser\[ray\]'"):
        read_labels(tmp_path / "x.parquet")


def test_parquet_labels_are_checked_like_csv(tmp_path: Path, items: list[AudioItem], teacher: Counting) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    label(items[:2], teacher, tmp_path / "l.parquet", config=HALF_SECOND)
    table = pq.read_table(tmp_path / "l.parquet")
    cases = [
        (table.drop_columns(["valence"]), r"lacks column\(s\) valence"),
        (table.set_column(5, "arousal", pa.array([None, 1.0, 1.0, 1.0], pa.float64())), "row 1: arousal is empty"),
        (table.set_column(3, "start_s", pa.array([0.0, -1.0, 0.0, 0.5])), "row 2: start_s must be 0 or more"),
        (table.set_column(3, "start_s", pa.array([0.0, 0.5, 0.0, 5.0])), "row 4: start_s 5 is past the end"),
        (table.set_column(5, "arousal", pa.array(["a"] * 4)), "arousal must hold numbers"),
        (table.slice(0, 0), "has no rows"),
    ]
    for i, (bad, message) in enumerate(cases):
        path = tmp_path / f"bad{i}.parquet"
        pq.write_table(bad, path)
        with pytest.raises(InputError, match=message):
            read_labels(path)


def test_a_stopped_ray_run_waits_for_ray_datas_pulling_threads_before_leaving_ray() -> None:
    """A pulling thread that calls into Ray after ``ray.shutdown()`` ends the process with exit 1 (seen in CI)."""
    import threading
    import time

    from edgeser.label.ray_engine import PULL_THREADS, _wait_for_pull_threads

    before = set(threading.enumerate())
    done = threading.Event()
    other = threading.Thread(target=done.wait, name="a-poller-that-lives-on", daemon=True)
    puller = threading.Thread(target=time.sleep, args=(0.3,), name=PULL_THREADS, daemon=True)
    other.start()
    puller.start()
    t0 = time.monotonic()
    _wait_for_pull_threads(before, timeout=5.0)
    assert not puller.is_alive()
    assert other.is_alive() and time.monotonic() - t0 < 2.0  # threads of other names are not waited for
    done.set()


def test_a_ray_client_address_is_refused_in_one_line_before_any_work(tmp_path: Path, corpus: Path,
                                                                    teacher_onnx: Path) -> None:
    """Ray Data pipelines fail through Ray Client (a traceback deep in Ray Data); the address is refused up front."""
    out = tmp_path / "l.csv"
    result = CliRunner().invoke(app, ["label", str(corpus), "--teacher", str(teacher_onnx), "--out", str(out),
                                      "--engine", "ray", "--ray-address", "ray://127.0.0.1:10001", "--quiet"])
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert "\n" not in message and "Ray Client" in message and "ray://127.0.0.1:10001" in message
    assert not out.exists() and not list(tmp_path.iterdir())
