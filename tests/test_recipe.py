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


# ---- pinned by mutation testing (docs/testing.md) ----------------------------------------------------------


def _rpi_path() -> Path:
    return Path(load_recipe("rpi").source)


def _error(*args, **kwargs) -> InputError:
    with pytest.raises(InputError) as err:
        load_recipe(*args, **kwargs)
    assert err.value.exit_code == 2 and "\n" not in err.value.message
    return err.value


@pytest.mark.parametrize(("dotted", "value", "message"), [
    ("data.calibration_windows", "many", "recipe key 'data.calibration_windows' must be int, got str 'many'"),
    ("data.seed", True, "recipe key 'data.seed' must be int, got bool True"),
    ("quantise.float_ops", "frontend", "recipe key 'quantise.float_ops' must be a list of str"),
    ("export.format", "tflite2", "recipe key 'export.format' must be one of onnx, tflite, got 'tflite2'"),
    ("quantise.float_ops", ["frontend", "conv"], "quantise.float_ops may only name frontend, softmax, head"),
    ("export.frontend", "cpu-logmel", "export.frontend 'cpu-logmel' needs export.format = 'tflite'"),
    ("bundle.ship", "float16", "bundle.ship must be 'float' or one of quantise.variants"),
    ("data.window_seconds.x", 1, "recipe key 'data.window_seconds' must be a table [data.window_seconds]"),
    ("description.x.y", 1, "recipe key 'description' must be a table [description]"),
])
def test_each_refusal_names_the_key_the_rule_and_the_file(dotted, value, message):
    assert _error("rpi", **{dotted: value}).message == f"{_rpi_path()}: {message}"


def test_booleans_are_kept_where_a_boolean_is_expected_and_spelt_where_a_word_is():
    r = load_recipe("rpi", **{"quantise.reduce_range": True, "quantise.per_channel": False})
    assert r.quantise.reduce_range == "true" and r.quantise.per_channel is False
    assert load_recipe("rpi", **{"quantise.reduce_range": False}).quantise.reduce_range == "false"


def test_float_is_always_a_variant_that_may_ship():
    r = load_recipe("rpi", **{"bundle.ship": "float", "quantise.variants": ["int8"]})
    assert r.bundle.ship == "float"


def test_recipe_files_name_their_keys_and_may_leave_tables_out(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('source = "/elsewhere"\n')
    known = "bundle, data, description, drift, export, quantise, runtime, target"
    assert _error(path).message == f"{path}: unknown recipe key 'source' (known: {known})"
    path.write_text('description = "no target"\n')
    assert _error(path).message == f"{path}: recipe is missing required key 'target'"
    path.write_text('target = "rpi"\nquantise = 3\n')
    assert _error(path).message == f"{path}: recipe key 'quantise' must be a table [quantise]"
    path.write_text('target = "rpi"\n')  # every table left out: defaults, and overrides still apply
    r = load_recipe(path, **{"drift.max_ccc_drop": 0.05})
    assert r.drift.max_ccc_drop == 0.05 and r.data.window_seconds == 2.0 and r.source == str(path)


def test_a_recipe_is_found_by_path_whatever_its_name(tmp_path):
    other = tmp_path / "my-recipe.cfg"
    other.write_text(_rpi_path().read_text())
    assert load_recipe(other).target == "rpi" and load_recipe(str(other)).source == str(other)
    missing = tmp_path / "missing.toml"
    assert _error(missing).message == f"{missing}: recipe file not found"
    assert _error("pi5").message == f"unknown target 'pi5' (available: {', '.join(list_targets())})"
    assert list_targets() == ["android", "coral", "rpi"]


def test_to_dict_is_the_whole_recipe_as_plain_data():
    table = load_recipe("rpi").to_dict()
    assert table["target"] == "rpi" and table["drift"] == {"max_ccc_drop": 0.01, "min_ccc_vs_float": 0.98}
    assert table["quantise"]["float_ops"] == ["frontend", "softmax", "head"]
