"""Reading user files: one encoding rule, one error per bad file (naming it), property tests of the readers."""

from __future__ import annotations

import codecs
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import event, given, settings
from hypothesis import strategies as st

from edgeser import userfiles
from edgeser.audio import AudioItem, list_audio
from edgeser.errors import InputError, OutputError
from edgeser.label import COLUMNS, LabelTable, read_labels
from edgeser.labelfile import MAX_DURATION_S

TEXT = "file,speaker\nCafé Ünïcode.wav,Zoë\n"
FAST = settings(max_examples=150, deadline=None)
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-be+bom", "utf-32", "utf-32-be+bom", "latin-1", "cp1252",
             "utf-16-le", "mac-roman"]


def _encode(text: str, encoding: str) -> bytes:
    """``text`` in ``encoding``; ``x+bom`` is codec x with its byte-order mark written first."""
    if encoding == "utf-16-be+bom":
        return codecs.BOM_UTF16_BE + text.encode("utf-16-be")
    if encoding == "utf-32-be+bom":
        return codecs.BOM_UTF32_BE + text.encode("utf-32-be")
    return text.encode(encoding, errors="replace")


# --------------------------------------------------------------------------- text


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-be+bom", "utf-32", "utf-32-be+bom"])
def test_utf8_and_unicode_with_a_bom_read_the_same(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(_encode(TEXT, encoding))
    assert userfiles.read_text(path) == TEXT


def test_latin1_names_the_file_the_offset_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(TEXT.encode("latin-1"))
    with pytest.raises(InputError) as err:
        userfiles.read_text(path, what="audio list")
    assert err.value.message == (f"{path}: audio list is not UTF-8 text: byte 0xe9 at offset 16 cannot be decoded; "
                                 "save it as UTF-8")


def test_utf16_without_a_bom_is_refused_at_its_first_nul(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_bytes("a.wav\n".encode("utf-16-le"))
    with pytest.raises(InputError, match=r"list.txt: text file has a NUL character at byte offset 1 .*as UTF-8"):
        userfiles.read_text(path)


def test_a_bad_utf16_sequence_counts_the_offset_from_the_start_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + "ab".encode("utf-16-le") + b"\x00\xd8" + "c".encode("utf-16-le"))
    with pytest.raises(InputError, match="not UTF-16-LE text: byte 0x00 at offset 6"):
        userfiles.read_text(path)


def test_missing_folder_and_oversized_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="none.csv: labels file not found"):
        userfiles.read_text(tmp_path / "none.csv", what="labels file")
    with pytest.raises(InputError, match="is a folder"):
        userfiles.read_text(tmp_path)
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 100)
    with pytest.raises(InputError, match="too large"):
        userfiles.read_bytes(big, limit=10)
    with pytest.raises(InputError, match="cannot read"):
        userfiles.read_text(tmp_path / ("x" * 5000))


# --------------------------------------------------------------------------- json, yaml, csv


@pytest.mark.parametrize(("content", "message"), [
    (b"[1, 2]", "must hold a JSON object, got list"),
    (b"{not json", r"invalid JSON at line 1 column 2"),
    (b"[" * 100_000, "unreadable JSON file"),
    (b'{"a": ' + b"1" * 5000 + b"}", "unreadable JSON file .Exceeds the limit"),
    ('{"a": "é"}'.encode("latin-1"), "not UTF-8 text: byte 0xe9 at offset 7"),
])
def test_json_errors_name_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as err:
        userfiles.read_json(path)
    assert str(path) in err.value.message and "\n" not in err.value.message


@pytest.mark.parametrize(("content", "message"), [
    (b"- a\n- b\n", "must be a mapping of keys to values, got a list"),
    (b"just a string\n", "must be a mapping of keys to values, got a str"),
    ("outputs: {logits: {labels: [é]}}\n".encode("latin-1"), "not UTF-8 text"),
    (b"a: [1, 2\n", r"invalid YAML in YAML file \(line 2: "),
    (b"a: !!python/object:os.system x\n", "invalid YAML"),
    (b"a: 2001-13-45\n", r"invalid YAML in YAML file \(month must be in 1..12\)"),
])
def test_yaml_must_be_a_mapping(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "model.yaml"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as err:
        userfiles.read_yaml_mapping(path)
    assert err.value.path == path


def test_yaml_empty_is_an_empty_mapping(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_bytes(codecs.BOM_UTF8)
    assert userfiles.read_yaml_mapping(path) == {}


def test_csv_rows_lines_and_checks(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('file , speaker\na.wav,s1\n\n"b\nc.wav"\nd.wav,s2,,\n', encoding="utf-8")
    table = userfiles.read_csv_rows(path, required=["file"])
    assert table.fields == ["file", "speaker"]
    assert table.rows == [{"file": "a.wav", "speaker": "s1"}, {"file": "b\nc.wav", "speaker": ""},
                          {"file": "d.wav", "speaker": "s2"}]
    assert table.lines == [2, 5, 6]
    path.write_text("file,speaker\na.wav,s1,extra\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 2: 3 cells but the header names 2"):
        userfiles.read_csv_rows(path)
    path.write_text("file,file\na,b\n", encoding="utf-8")
    with pytest.raises(InputError, match="column.s. file more than once"):
        userfiles.read_csv_rows(path)
    path.write_text("who\nx\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"lacks column\(s\) file \(has: who\); write it so"):
        userfiles.read_csv_rows(path, required=["file"], hint="write it so")
    path.write_text("file\n" + "x" * 200_000 + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="malformed CSV file at line 2"):
        userfiles.read_csv_rows(path)


# --------------------------------------------------------------------------- sqlite, torch, safetensors

SCHEMA = "CREATE TABLE items (key TEXT PRIMARY KEY, value TEXT)"


def test_sqlite_is_created_then_reopened(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "c.sqlite"
    db = userfiles.open_sqlite(path, schema=SCHEMA)
    db.execute("INSERT INTO items VALUES ('a', 'b')")
    db.commit()
    db.close()
    db = userfiles.open_sqlite(path, schema=SCHEMA)
    assert db.execute("SELECT value FROM items").fetchall() == [("b",)]
    db.close()
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    userfiles.open_sqlite(empty, schema=SCHEMA).close()


@pytest.mark.parametrize(("make", "message"), [
    ("CREATE TABLE items (key TEXT PRIMARY KEY)", "has another layout .tables: items."),
    ("CREATE TABLE items (key TEXT PRIMARY KEY, value TEXT); CREATE TABLE mine (x)", "has another layout"),
    ("CREATE TABLE photos (x)", r"has another layout \(tables: photos\)"),
])
def test_sqlite_with_another_schema_is_refused_and_left_alone(tmp_path: Path, make: str, message: str) -> None:
    path = tmp_path / "c.sqlite"
    db = sqlite3.connect(path)
    db.executescript(make)
    db.close()
    before = path.read_bytes()
    with pytest.raises(InputError, match=message) as err:
        userfiles.open_sqlite(path, schema=SCHEMA, what="label cache")
    assert err.value.path == path and "label cache" in err.value.message
    assert path.read_bytes() == before


def test_sqlite_not_a_database_or_truncated(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"hello, not a database at all" * 10)
    with pytest.raises(InputError, match="c.sqlite: database is not a SQLite database"):
        userfiles.open_sqlite(path, schema=SCHEMA)
    good = tmp_path / "good.sqlite"
    db = userfiles.open_sqlite(good, schema=SCHEMA)
    db.executemany("INSERT INTO items VALUES (?, ?)", [(str(i), "v" * 500) for i in range(200)])
    db.commit()
    db.close()
    path.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(InputError, match="c.sqlite: unreadable database"):
        userfiles.open_sqlite(path, schema=SCHEMA).execute("SELECT * FROM items").fetchall()


def test_sqlite_that_cannot_be_created_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot open database"):
        userfiles.open_sqlite(tmp_path / "file" / "c.sqlite", schema=SCHEMA)


def test_torch_state_truncated_or_unsafe(tmp_path: Path) -> None:
    import fractions

    import torch

    path = tmp_path / "run.state.pt"
    torch.save({"a": torch.zeros(1000)}, path)
    assert torch.equal(userfiles.load_torch_state(path)["a"], torch.zeros(1000))
    whole = path.read_bytes()
    for cut in (0, 10, len(whole) // 2, len(whole) - 1):
        path.write_bytes(whole[:cut])
        with pytest.raises(InputError, match="run.state.pt: corrupt or unsupported checkpoint .truncated or not a"):
            userfiles.load_torch_state(path)
    torch.save({"x": fractions.Fraction(1, 3)}, path)
    with pytest.raises(InputError, match="truncated or not a checkpoint"):
        userfiles.load_torch_state(path)
    torch.save([1, 2], path)
    with pytest.raises(InputError, match="holds a list, not a dict"):
        userfiles.load_torch_state(path)


def test_safetensors_header_reads_shapes_without_data(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    save_file({"a": torch.zeros(3, 4), "b": torch.ones(5)}, str(path), metadata={"k": "v"})
    assert userfiles.safetensors_header(path) == ({"k": "v"}, {"a": (3, 4), "b": (5,)})
    assert set(userfiles.load_safetensors(path)) == {"a", "b"}
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(InputError, match="m.safetensors: corrupt or unsupported weights file .not a readable"):
        userfiles.safetensors_header(path, what="weights file")
    with pytest.raises(InputError, match="not a readable safetensors file"):
        userfiles.load_safetensors(path)


# --------------------------------------------------------------------------- teachers' model.yaml


@pytest.mark.parametrize(("content", "message"), [
    (b"- logits\n- hidden\n", "must be a mapping of keys to values, got a list"),
    (b"an onnx teacher\n", "must be a mapping of keys to values, got a str"),
    ("outputs:\n  logits:\n    labels: [arousal, dominance, valence]  # é\n".encode("latin-1"), "not UTF-8 text"),
    (b"outputs:\n  logits:\n    labels: arousal\n", "labels must be a list"),
])
def test_a_teacher_folder_with_a_bad_model_yaml_is_one_input_error(
    tmp_path: Path, teacher_onnx: Path, content: bytes, message: str
) -> None:
    from edgeser.teachers import load_teacher

    folder = tmp_path / "teacher"
    folder.mkdir()
    shutil.copy(teacher_onnx, folder / "model.onnx")
    (folder / "model.yaml").write_bytes(content.replace(b"logits", b"adv"))
    with pytest.raises(InputError, match=message) as err:
        load_teacher(folder)
    assert err.value.path == folder / "model.yaml"


# --------------------------------------------------------------------------- property tests

CELL = st.one_of(
    st.sampled_from(["", "0", "0.5", "-5", "1e12", "1e9", "nan", "inf", "-0", " 1 ", "0x10", "1_0", "0.99999"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**15), 10**15).map(str),
    st.text(max_size=12),
)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("userfiles")
    sf.write(folder / "a.wav", np.full(16_000, 0.1, np.float32), 16_000)
    (folder / "notes.txt").write_text("not audio\n", encoding="utf-8")
    return folder


VALID_ROW = {"file": "a.wav", "speaker": "s1", "window": "0", "start_s": "0.5", "duration_s": "0.5",
             "arousal": "0.5", "dominance": "0.25", "valence": "0.75", "sha256": "", "teacher": "t"}
FILE_CELL = st.sampled_from(["a.wav", "./a.wav", "notes.txt", "gone.wav", "", "/", "x" * 300, "a.wav\x00", "b\nc"])


@st.composite
def labels_files(draw: st.DrawFn) -> bytes:
    """Mostly well-formed labels CSVs with a few cells, columns or bytes spoilt; some random bytes."""
    import csv
    import io

    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(max_size=200))
    columns = list(COLUMNS)
    if draw(st.integers(0, 7)) == 0:
        columns = draw(st.lists(st.sampled_from([*COLUMNS, "extra", ""]), max_size=len(COLUMNS) + 2))
    rows = [[VALID_ROW.get(c, "") for c in columns] for _ in range(draw(st.integers(0, 5)))]
    for _ in range(draw(st.integers(0, 2))):  # spoil a cell or two, or add one past the header
        if rows:
            row = draw(st.sampled_from(rows))
            at = draw(st.integers(0, len(columns)))
            cell = draw(FILE_CELL if at < len(columns) and columns[at] == "file" else CELL)
            row[at:at + 1] = [cell]
    buf = io.StringIO()
    csv.writer(buf, lineterminator=draw(st.sampled_from(["\n", "\r\n", "\r"]))).writerows([columns, *rows])
    return _encode(buf.getvalue(), draw(st.sampled_from(ENCODINGS)))


@FAST
@given(content=labels_files(), check_audio=st.booleans())
def test_read_labels_gives_a_table_or_an_input_error(audio_dir: Path, content: bytes, check_audio: bool) -> None:
    path = audio_dir / "labels.csv"
    path.write_bytes(content)
    try:
        table = read_labels(path, check_audio=check_audio)
    except InputError as exc:
        event("InputError")
        assert exc.path == path and "\n" not in exc.message.replace(str(path), "")
        return
    event("LabelTable")
    assert isinstance(table, LabelTable) and len(table) > 0
    assert np.isfinite(table.start_s).all() and (table.start_s >= 0).all()
    assert ((table.duration_s > 0) & (table.duration_s <= MAX_DURATION_S)).all()
    assert np.isfinite(table.targets).all() and table.targets.shape == (len(table), 3)
    if check_audio:
        assert all(f.is_file() for f in table.files) and (table.start_s < 1.0).all()


@st.composite
def audio_lists(draw: st.DrawFn) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from([".csv", ".txt"]))
    names = st.one_of(st.text(max_size=20), st.sampled_from(["a.wav", "/abs/b.wav", "", " ", "x" * 5000]))
    if suffix == ".csv":
        header = draw(st.sampled_from(["file,speaker", "file", "speaker,file", "path", "", "file,file"]))
        lines = [header, *(",".join(draw(st.lists(names, max_size=3))) for _ in range(draw(st.integers(0, 4))))]
    else:
        lines = draw(st.lists(names, max_size=5))
    if draw(st.integers(0, 9)) == 0:
        return suffix, draw(st.binary(max_size=200))
    return suffix, _encode("\n".join(lines), draw(st.sampled_from(ENCODINGS)))


@FAST
@given(source=audio_lists())
def test_list_audio_gives_items_or_an_input_error(audio_dir: Path, source: tuple[str, bytes]) -> None:
    suffix, content = source
    path = audio_dir / f"list{suffix}"
    path.write_bytes(content)
    try:
        items = list_audio(path)
    except InputError as exc:
        event("InputError")
        assert exc.path == path and "\n" not in exc.message.replace(str(path), "")
        return
    event("items")
    assert items and all(isinstance(i, AudioItem) and str(i.path).strip() for i in items)


def test_json_helper_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(codecs.BOM_UTF8 + json.dumps({"a": [1, 2]}).encode())
    assert userfiles.read_json(path) == {"a": [1, 2]}
