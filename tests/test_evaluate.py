"""``edgeser evaluate``: a model against a teacher, a labels CSV and human-derived targets, on the tiny corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeser.audio import list_audio
from edgeser.cli import app
from edgeser.defaults import CATEGORY_ADV
from edgeser.errors import InputError, OutputError
from edgeser.evaluate import evaluate
from edgeser.evaluate_report import REPORT_FILES, write_report
from edgeser.metrics import DIMENSIONS, ccc, pearson

EMOTIONS = ("anger", "W", "sadness", "T", "neutral", "n", "Happiness", "F")
"""Names (any case) and EmoDB letters, cycled over the corpus."""
LETTERS = {"W": "anger", "T": "sadness", "N": "neutral", "F": "happiness"}


def _write_list(path: Path, corpus: Path, extra: dict[str, list[str]]) -> Path:
    """The corpus list with absolute paths and extra columns."""
    items = list_audio(corpus)
    lines = [",".join(["file", "speaker", *extra])]
    for i, it in enumerate(items):
        lines.append(",".join([str(it.path), str(it.speaker), *(col[i] for col in extra.values())]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _categories(n: int) -> tuple[list[str], np.ndarray]:
    words = [EMOTIONS[i % len(EMOTIONS)] for i in range(n)]
    names = [LETTERS[w.upper()] if len(w) == 1 else w.lower() for w in words]
    return words, np.array([CATEGORY_ADV[n] for n in names], np.float32)


def _labels_csv(path: Path, corpus: Path, values: np.ndarray) -> Path:
    """A hand-written labels CSV: one 1-s window per corpus clip with the given A/D/V."""
    lines = ["file,speaker,start_s,duration_s,arousal,dominance,valence"]
    for it, v in zip(list_audio(corpus), values, strict=True):
        lines.append(f"{it.path},{it.speaker},0,1.0,{v[0]:.7f},{v[1]:.7f},{v[2]:.7f}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def plain(student: Path, corpus: Path, teacher_onnx: Path):
    return evaluate(student, audio=corpus, teacher=teacher_onnx)


def test_agreement_with_the_teacher_pooled_and_per_speaker(plain, student, corpus, teacher_onnx):
    from edgeser.build import collect_windows
    from edgeser.runners import open_any
    from edgeser.teachers import load_teacher

    runner, _ = open_any(student)
    windows = collect_windows(list_audio(corpus), runner.spec.window_samples).data
    teacher = load_teacher(str(teacher_onnx))(windows)
    model = runner.predict(windows)
    assert plain.windows == 48 and plain.files == 48 and plain.window_seconds == 2.0
    assert plain.human is None and plain.vs_human() is None
    pooled, speakers = plain.vs_teacher()
    np.testing.assert_allclose(pooled.ccc, ccc(model, teacher), atol=1e-5)
    np.testing.assert_allclose(pooled.pearson, pearson(model, teacher), atol=1e-5)
    np.testing.assert_allclose(pooled.offset, (model - teacher).mean(0), atol=1e-6)
    assert list(speakers) == ["spk0", "spk1", "spk2", "spk3"]
    rows = np.arange(12, 24)  # spk1's clips, in list order
    np.testing.assert_allclose(speakers["spk1"].ccc, ccc(model[rows], teacher[rows]), atol=1e-5)
    assert plain.teacher["identity"].startswith("onnx-")


def test_json_shape(plain):
    out = plain.to_json()
    assert list(out) == ["model", "audio", "teacher", "human", "agreement"]
    assert out["audio"] == {"source": out["audio"]["source"], "files": 48, "windows": 48, "window_seconds": 2.0,
                            "speakers": ["spk0", "spk1", "spk2", "spk3"]}
    assert out["human"] is None
    pooled = out["agreement"]["pooled"]
    assert pooled["windows"] == 48 and set(pooled) == {"windows", *DIMENSIONS}
    assert set(pooled["valence"]) == {"ccc", "pearson", "offset"}
    assert list(out["agreement"]["speakers"]) == ["spk0", "spk1", "spk2", "spk3"]
    json.dumps(out, allow_nan=False)


def test_categories_give_accuracy_first(student, corpus, teacher_onnx, tmp_path, plain):
    words, targets = _categories(48)
    lst = _write_list(tmp_path / "list.csv", corpus, {"emotion": words})
    ev = evaluate(student, audio=lst, teacher=teacher_onnx)
    assert ev.human is not None and ev.human.kind == "categories"
    np.testing.assert_array_equal(ev.human.values, targets)
    model, _ = ev.vs_human("model")
    teacher, per_speaker = ev.vs_human("teacher")
    np.testing.assert_allclose(model.ccc, ccc(plain.predictions, targets), atol=1e-6)
    np.testing.assert_allclose(teacher.ccc, ccc(plain.teacher_labels, targets), atol=1e-6)
    assert list(per_speaker) == ["spk0", "spk1", "spk2", "spk3"]
    out = ev.to_json()
    assert list(out) == ["model", "audio", "teacher", "human", "agreement"]
    assert out["human"]["kind"] == "categories"
    assert list(out["human"]["accuracy"]) == ["model", "teacher"]
    assert out["human"]["accuracy"]["model"]["pooled"]["arousal"]["ccc"] == pytest.approx(model.ccc[0])


def test_ratings_of_the_teacher_score_the_teacher_perfectly(student, corpus, teacher_onnx, tmp_path, plain):
    t = plain.teacher_labels
    cols = {dim: [f"{v:.7f}" for v in t[:, d]] for d, dim in enumerate(DIMENSIONS)}
    ev = evaluate(student, audio=_write_list(tmp_path / "rated.csv", corpus, cols), teacher=teacher_onnx)
    assert ev.human is not None and ev.human.kind == "ratings"
    teacher, _ = ev.vs_human("teacher")
    model, _ = ev.vs_human("model")
    np.testing.assert_allclose(teacher.ccc, 1.0, atol=1e-5)
    np.testing.assert_allclose(model.ccc, plain.vs_teacher()[0].ccc, atol=1e-5)


def test_labels_csv_replaces_the_teacher(student, corpus, tmp_path):
    from edgeser.runners import open_any

    runner, _ = open_any(student)
    own = np.stack([runner(np.asarray(_load(it.path))) for it in list_audio(corpus)])
    ev = evaluate(student, labels=_labels_csv(tmp_path / "own.csv", corpus, own))
    assert ev.window_seconds == 1.0 and ev.teacher["name"] == "labels in own.csv"
    pooled, speakers = ev.vs_teacher()
    np.testing.assert_allclose(pooled.ccc, 1.0, atol=1e-4)
    np.testing.assert_allclose(pooled.offset, 0.0, atol=1e-6)
    shifted = evaluate(student, labels=_labels_csv(tmp_path / "shifted.csv", corpus, own + 0.1))
    np.testing.assert_allclose(shifted.vs_teacher()[0].offset, -0.1, atol=1e-5)
    assert list(speakers) == ["spk0", "spk1", "spk2", "spk3"] and ev.human is None
    words, targets = _categories(48)
    beside = evaluate(student, labels=tmp_path / "own.csv",
                      audio=_write_list(tmp_path / "emo.csv", corpus, {"emotion": words}))
    assert beside.human is not None
    np.testing.assert_array_equal(beside.human.values, targets)
    own = (tmp_path / "own.csv").read_text(encoding="utf-8").splitlines()
    with_emotion = [own[0] + ",emotion", *(f"{row},{w}" for row, w in zip(own[1:], words, strict=True))]
    (tmp_path / "own_emotion.csv").write_text("\n".join(with_emotion) + "\n", encoding="utf-8")
    inside = evaluate(student, labels=tmp_path / "own_emotion.csv")
    assert inside.human is not None and inside.human.kind == "categories"  # its A/D/V are the teacher's
    np.testing.assert_array_equal(inside.human.values, targets)


def _load(path: Path) -> np.ndarray:
    from edgeser.audio import load

    return load(path)


def test_cli_table_json_and_report(student, corpus, teacher_onnx, tmp_path):
    words, _ = _categories(48)
    lst = _write_list(tmp_path / "list.csv", corpus, {"emotion": words})
    args = ["evaluate", "--model", str(student), "--audio", str(lst), "--teacher", str(teacher_onnx), "-q"]
    cli = CliRunner()
    result = cli.invoke(app, [*args, "--json", str(tmp_path / "ev.json"), "--report", str(tmp_path / "rep")],
                        terminal_width=100)
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.index("Accuracy against human-derived targets") < out.index("Agreement with the teacher")
    assert "CCC, speaker spk3" in out and "student.safetensors on 48 windows of 2 s from 48 files" in out
    data = json.loads((tmp_path / "ev.json").read_text(encoding="utf-8"))
    assert data["human"]["kind"] == "categories"
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == sorted(REPORT_FILES)
    md = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    assert md.index("## Accuracy") < md.index("## Agreement with the teacher") < md.index("scatter_valence.png")
    assert json.loads((tmp_path / "rep" / "evaluation.json").read_text(encoding="utf-8")) == data
    again = cli.invoke(app, [*args, "--report", str(tmp_path / "rep")])
    assert again.exit_code == 5 and again.output.count("\n") == 1 and "--overwrite" in again.output
    before = (tmp_path / "rep" / "report.md").stat().st_mtime_ns
    assert cli.invoke(app, [*args, "--report", str(tmp_path / "rep"), "--overwrite"]).exit_code == 0
    assert (tmp_path / "rep" / "report.md").stat().st_mtime_ns != before


def test_report_refuses_a_folder_that_is_not_a_report(plain, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "report.md").write_text("notes", encoding="utf-8")
    (folder / "data.wav").write_bytes(b"")
    with pytest.raises(OutputError, match="not an edgeser evaluate report"):
        write_report(plain, folder, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["data.wav", "report.md"]
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]  # no staging folder left behind


@pytest.mark.parametrize(("column", "value", "message"), [
    ("emotion", "joy", "line 2: unknown emotion 'joy' (known: anger (W), boredom (L)"),
    ("arousal", "3", "line 2: arousal is 3; human ratings must be on the models' 0..1 scale"),
    ("arousal", "nan", "line 2: arousal is nan; human ratings must be on the models' 0..1 scale"),
    ("arousal", "", "line 2: arousal is not a number ('')"),
])
def test_bad_human_targets_are_one_line(column, value, message, student, corpus, teacher_onnx, tmp_path):
    n = 48
    if column == "emotion":
        cols = {"emotion": [value] + ["anger"] * (n - 1)}
    else:
        cols = {dim: ["0.5"] * n for dim in DIMENSIONS}
        cols[column] = [value] + ["0.5"] * (n - 1)
    lst = _write_list(tmp_path / "bad.csv", corpus, cols)
    result = CliRunner().invoke(app, ["evaluate", "--model", str(student), "--audio", str(lst), "--teacher",
                                      str(teacher_onnx), "-q"])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {lst}: {message}") and result.output.count("\n") == 1


def test_bad_inputs_are_one_line(student, corpus, teacher_onnx, tmp_path):
    labels = _labels_csv(tmp_path / "l.csv", corpus, np.full((48, 3), 0.5))
    cases = [
        (["--audio", str(tmp_path / "none")], 2, f"error: {tmp_path / 'none'}: audio source not found"),
        (["--labels", str(labels), "--teacher", str(teacher_onnx)], 2,
         "error: --teacher and --teacher-output do not apply with --labels"),
        (["--audio", str(labels)], 2, f"error: {labels}: is a labels file"),
        (["--model", str(tmp_path / "m.onnx"), "--audio", str(corpus)], 2, f"error: {tmp_path / 'm.onnx'}: model "
         "not found"),
        (["--audio", str(corpus), "--report", str(corpus.parent)], 5, f"error: {corpus.parent}: exists already"),
    ]
    for args, code, start in cases:
        full = ["evaluate", "-q", *(["--model", str(student)] if "--model" not in args else []), *args]
        result = CliRunner().invoke(app, full)
        assert result.exit_code == code, (args, result.output)
        assert result.output.startswith(start), result.output
        assert result.output.count("\n") == 1, result.output


def test_too_few_windows(student, tmp_path, wav):
    one = wav(np.sin(np.arange(16_000) / 7.0).astype(np.float32) * 0.3, name="one.wav")
    with pytest.raises(InputError, match="gives 1 window of 32000 samples; CCC needs at least 2"):
        evaluate(student, audio=one)


@pytest.mark.slow
def test_a_bundle_folder_and_its_archive_measure_the_same(student, corpus, teacher_onnx, small_recipe, tmp_path):
    from edgeser.build import build

    result = build(student=student, teacher=teacher_onnx, audio=corpus, recipe=small_recipe, out=tmp_path / "b")
    assert result.archive is not None
    folder = evaluate(result.out, audio=corpus, teacher=teacher_onnx)
    archive = evaluate(result.archive, audio=corpus, teacher=teacher_onnx)
    assert folder.model == "b" and archive.model == "b.tar.gz" and folder.window_seconds == 1.0
    np.testing.assert_array_equal(folder.predictions, archive.predictions)
    assert folder.vs_teacher()[0].ccc == archive.vs_teacher()[0].ccc
    assert folder.vs_teacher()[0].ccc[0] > 0.5  # the int8 bundle of a student fitted to this teacher follows it
    unpacked = [p.name for p in tmp_path.iterdir()]
    assert sorted(unpacked) == ["b", "b.tar.gz"]  # nothing left beside the bundle
