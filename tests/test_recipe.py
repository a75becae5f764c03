from pathlib import Path

import pytest

from edgeser.errors import InputError
from edgeser.recipe import list_targets, load_recipe


def test_rpi_recipe_defaults():
    r = load_recipe("rpi")
    assert r.target == "rpi"
    assert r.export.format == "onnx"
    assert r.quantise.float_ops == ["frontend", "softmax", "head"]
    assert r.export.layout == "fast"
    assert r.drift.max_ccc_drop == 0.01 and r.drift.min_ccc_vs_float == 0.98
    assert r.window_samples() == 32_000
    assert "rpi" in list_targets()


def _write(tmp_path: Path, text: str) -> Path:
    base = (Path(load_recipe("rpi").source)).read_text()
    p = tmp_path / "r.toml"
    p.write_text(base + "\n" + text)
    return p


@pytest.mark.parametrize("extra,message", [
    ("[extra]\nx = 1", "unknown recipe key 'extra'"),
    ("[runtime.more]\n", "unknown recipe key 'runtime.more'"),
])
def test_unknown_keys_name_key_and_file(tmp_path, extra, message):
    p = _write(tmp_path, extra)
    with pytest.raises(InputError) as err:
        load_recipe(p)
    assert message in str(err.value) and str(p) in str(err.value)


@pytest.mark.parametrize("dotted,value,message", [
    ("data.calibration_windows", "many", "must be int"),
    ("drift.max_ccc_drop", "x", "must be float"),
    ("quantise.float_ops", "frontend", "must be a list of str"),
    ("export.format", "tflite2", "must be one of"),
    ("quantise.float_ops", ["frontend", "conv"], "may only name"),
    ("data.window_seconds", -1.0, r"recipe key .data.window_seconds. must be between 0.1 and 60, got -1.0"),
    ("export.opset", 3, r"recipe key .export.opset. must be between 13 and 23, got 3"),
    ("bundle.ship", "float16", "bundle.ship"),
])
def test_ill_typed_values(dotted, value, message):
    with pytest.raises(InputError, match=message):
        load_recipe("rpi", **{dotted: value})


def test_overrides_and_int_as_float():
    r = load_recipe("rpi", **{"drift.max_ccc_drop": 0, "quantise.float_ops": []})
    assert r.drift.max_ccc_drop == 0.0 and isinstance(r.drift.max_ccc_drop, float)
    assert r.quantise.float_ops == []


def test_unknown_target_and_bad_toml(tmp_path):
    with pytest.raises(InputError, match="unknown target 'pi5'"):
        load_recipe("pi5")
    p = tmp_path / "bad.toml"
    p.write_text("target = [")
    with pytest.raises(InputError, match="invalid TOML"):
        load_recipe(p)
