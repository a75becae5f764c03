"""Word bands: one measured table (edgeser/runtime/bands.json) that predict, live, the API and every bundle read."""

import importlib.util
import io
import json
import math
from pathlib import Path

import pytest

from edgeser.runtime.bands import BANDS_FILE, WORDS, Bands, load_bands
from edgeser.runtime.spec import DIMENSIONS

TOOL = Path(__file__).resolve().parents[1] / "tools" / "build_bands.py"


def _tool():
    spec = importlib.util.spec_from_file_location("build_bands", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_words_follow_the_thresholds():
    bands = Bands({"arousal": (0.3, 0.5), "dominance": (0.2, 0.4), "valence": (0.1, 0.9)})
    assert [bands.word("arousal", v) for v in (-0.2, 0.3, 0.3001, 0.5, 0.5001, 1.3)] == [
        "calm", "calm", "neutral", "neutral", "excited", "excited"]
    assert bands.words_for((0.31, 0.1, 0.95)) == {"arousal": "neutral", "dominance": "submissive",
                                                   "valence": "positive"}
    assert bands.word("valence", math.nan) == "-"
    assert bands.describe("dominance") == "submissive <= 0.200 < neutral <= 0.400 < dominant"
    with pytest.raises(KeyError):
        bands.word("pleasure", 0.5)


def test_the_dashboard_gets_upper_bounds_ascending():
    bands = load_bands()
    table = bands.for_dashboard()
    assert list(table) == list(DIMENSIONS)
    for dim, rows in table.items():
        bounds = [b for b, _ in rows]
        assert bounds == sorted(bounds) and bounds[-1] == 1.0 and bounds[:2] == list(bands.thresholds[dim])
        assert tuple(w for _, w in rows) == WORDS[dim]
    json.dumps(table)  # what the dashboard sends


def test_the_shipped_table_is_measured_on_the_current_default_student():
    from edgeser.defaults import default_student_path
    from edgeser.runtime.integrity import sha256_file

    bands = load_bands()
    assert bands.measured_on(sha256_file(default_student_path())), "rerun tools/build_bands.py"
    table = json.loads(BANDS_FILE.read_text(encoding="utf-8"))
    assert table["speakers"] == ["11", "14"] and sum(table["clips_per_category"].values()) == 124
    assert "speakers 11, 14" in bands.source and table["measured"] in bands.source


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t.pop("dimensions"), "has no 'dimensions'"),
    (lambda t: t["dimensions"]["valence"].update(thresholds=[0.5, 0.4]), "valence needs two ascending"),
    (lambda t: t["dimensions"].pop("arousal"), "arousal needs two ascending"),
])
def test_a_malformed_table_is_refused_naming_the_file(tmp_path, change, message):
    table = json.loads(BANDS_FILE.read_text(encoding="utf-8"))
    change(table)
    path = tmp_path / "bands.json"
    path.write_text(json.dumps(table))
    with pytest.raises(ValueError, match=f"^{path}: cannot read the band table .*{message}"):
        load_bands(path)


def test_every_bundle_carries_the_same_table(tmp_path):
    from edgeser.testing import tiny_bundle

    bundle = tiny_bundle(tmp_path / "bundle")
    copy = bundle / "runner" / "edgeser_runtime" / "bands.json"
    assert copy.read_bytes() == BANDS_FILE.read_bytes()
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert "runner/edgeser_runtime/bands.json" in manifest["files"]


def test_the_tool_rule_midpoints_around_neutral_or_thirds():
    tool = _tool()
    medians = {"anger": 0.8, "boredom": 0.2, "disgust": 0.5, "fear": 0.6, "happiness": 0.9, "neutral": 0.3,
               "sadness": 0.1}
    cuts, groups, levels = tool.thresholds(medians, DIMENSIONS.index("arousal"))  # lexicon: "neutral" is calm
    assert groups["middle"] == [] and groups["low"] == ["boredom", "neutral", "sadness"]
    assert levels == {"low": 0.2, "high": 0.7} and cuts == [0.367, 0.533]
    cuts, groups, levels = tool.thresholds(medians, DIMENSIONS.index("valence"))  # "neutral" is mid-scale
    assert groups == {"low": ["anger", "boredom", "disgust", "fear", "sadness"], "middle": ["neutral"],
                      "high": ["happiness"]}
    assert cuts == [round((0.5 + 0.3) / 2, 3), round((0.3 + 0.9) / 2, 3)]


@pytest.mark.slow
def test_the_tool_reproduces_the_shipped_table_from_the_built_in_clips(tmp_path, capsys):
    from edgeser.defaults import calibration_list_path

    out = tmp_path / "bands.json"
    assert _tool().main(["--data", str(calibration_list_path()), "--out", str(out)]) == 0
    ours, shipped = json.loads(out.read_text()), json.loads(BANDS_FILE.read_text())
    assert ours["dimensions"] == shipped["dimensions"] and ours["model"] == shipped["model"]
    assert "| neutral | 16 |" in capsys.readouterr().out


def test_the_live_view_shows_the_words():
    from rich.console import Console

    from edgeser.live import LiveView
    from edgeser.runtime.stream import Reading

    view = LiveView(source="mic", model="m")
    adv = (0.95, 0.05, 0.40)
    view.last = Reading(index=0, end_s=1.0, window_s=1.0, speech=True, adv=adv, level_dbfs=-20.0, latency_ms=1.0)
    view.last_adv = adv
    buffer = io.StringIO()
    Console(file=buffer, width=120, color_system=None).print(view)
    words = load_bands().words_for(adv)
    assert words == {"arousal": "excited", "dominance": "submissive", "valence": words["valence"]}
    for dim, value in zip(DIMENSIONS, adv, strict=True):
        assert f"{value:.3f} {words[dim]}" in buffer.getvalue()
