"""One validation layer at the boundary: every numeric recipe key, command-line option and config field
has a documented, finite range that is checked before any work starts."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_stream import SR, FakeRunner, comparable, speech_like
from typer.testing import CliRunner

from edgeser import limits
from edgeser.cli import app
from edgeser.distill import DistillConfig
from edgeser.errors import InputError
from edgeser.label import LabelConfig
from edgeser.recipe import ONNX_OPSETS, RANGES, Recipe, list_targets, load_recipe
from edgeser.runtime.stream import StreamConfig, Streamer

cli = CliRunner()
PROPERTY = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# ---- recipes -----------------------------------------------------------------------------------------

def _sections() -> dict[str, type]:
    hints = typing.get_type_hints(Recipe)
    return {f.name: hints[f.name] for f in dataclasses.fields(Recipe) if dataclasses.is_dataclass(hints[f.name])}


def _numeric_keys() -> set[str]:
    keys = set()
    for section, cls in _sections().items():
        hints = typing.get_type_hints(cls)
        keys |= {f"{section}.{f.name}" for f in dataclasses.fields(cls) if hints[f.name] in (int, float)}
    return keys


def test_every_numeric_recipe_key_has_a_range() -> None:
    assert set(RANGES) == _numeric_keys()
    for allowed in RANGES.values():
        assert math.isfinite(allowed.lo) and math.isfinite(allowed.hi) and allowed.lo < allowed.hi


@pytest.mark.parametrize("target", list_targets())
def test_shipped_recipes_are_within_range(target: str) -> None:
    recipe = load_recipe(target)
    for key, allowed in RANGES.items():
        section, name = key.split(".")
        assert getattr(getattr(recipe, section), name) in allowed, key


def test_docs_show_every_recipe_range() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "recipes.md").read_text(encoding="utf-8")
    for key, allowed in RANGES.items():
        shown = allowed.describe().removeprefix("between ").replace(" and ", " to ")
        assert f"| `{key}` | {'int' if isinstance(allowed.lo, int) else 'float'}, {shown} |" in page, key


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def _recipe_file(tmp_path: Path, tables: dict[str, Any], name: str = "r.toml") -> Path:
    lines = [f"target = {_toml(tables.pop('target', 'rpi'))}"]
    for key, value in tables.items():
        if isinstance(value, dict):
            lines += [f"[{key}]", *(f"{_toml(k)} = {_toml(v)}" for k, v in value.items())]
        else:
            lines.insert(0, f"{key} = {_toml(value)}")
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _outside(key: str) -> list[Any]:
    allowed = RANGES[key]
    if isinstance(allowed.lo, int) and isinstance(allowed.hi, int):
        return [allowed.lo - 1, allowed.hi + 1, 10**12, -(10**12)]
    return [allowed.lo - abs(allowed.lo) / 2 - 1e-3, allowed.hi + abs(allowed.hi) + 1.0, 1e9, math.inf,
            -math.inf, math.nan]


@pytest.mark.parametrize(("key", "value"), [(k, v) for k in sorted(RANGES) for v in _outside(k)],
                         ids=lambda x: str(x))
def test_recipe_values_outside_their_range_name_key_range_and_file(tmp_path: Path, key: str, value: Any) -> None:
    section, name = key.split(".")
    path = _recipe_file(tmp_path, {section: {name: value}})
    with pytest.raises(InputError) as err:
        load_recipe(path)
    message = str(err.value)
    assert message.startswith(f"{path}: recipe key '{key}' must be {RANGES[key].describe()}, got ")
    assert "\n" not in message


@pytest.mark.parametrize("key", sorted(RANGES))
def test_recipe_range_ends_are_accepted(tmp_path: Path, key: str) -> None:
    section, name = key.split(".")
    for end in (RANGES[key].lo, RANGES[key].hi):
        recipe = load_recipe(_recipe_file(tmp_path, {section: {name: end}}))
        assert getattr(getattr(recipe, section), name) == end


@pytest.mark.parametrize("opset", [3, ONNX_OPSETS.lo - 1, ONNX_OPSETS.hi + 1])
def test_an_opset_the_exporter_cannot_write_is_refused_at_load(tmp_path: Path, opset: int) -> None:
    with pytest.raises(InputError, match=rf"'export.opset' must be between 13 and 23, got {opset}$"):
        load_recipe(_recipe_file(tmp_path, {"export": {"opset": opset}}))


@pytest.mark.parametrize("opset", [ONNX_OPSETS.lo, ONNX_OPSETS.hi])
def test_the_opset_range_ends_export_and_run(tmp_path: Path, opset: int) -> None:
    torch = pytest.importorskip("torch")
    import onnx

    from edgeser.export.onnx import export
    from edgeser.models import create_model
    from edgeser.runtime.engine import InputSpec

    torch.manual_seed(0)
    recipe = load_recipe("rpi", **{"export.opset": opset})
    art = export(create_model("wav2small"), tmp_path / "m.onnx", recipe=recipe, spec=InputSpec(window_samples=SR))
    assert art.details["parity_max_abs_diff"] <= recipe.export.parity_tolerance
    assert {o.version for o in onnx.load(str(art.path)).opset_import if o.domain in ("", "ai.onnx")} == {opset}


def test_a_recipe_table_that_is_not_a_table_is_refused_with_overrides(tmp_path: Path) -> None:
    path = _recipe_file(tmp_path, {"quantise": 3})
    with pytest.raises(InputError, match="recipe key 'quantise' must be a table"):
        load_recipe(path, **{"quantise.float_ops": []})


_SCALARS = (st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.floats(allow_nan=True, allow_infinity=True)
            | st.booleans() | st.text(max_size=12))
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


def _near(allowed: limits.Range) -> st.SearchStrategy[Any]:
    if isinstance(allowed.lo, int) and isinstance(allowed.hi, int):
        return st.integers(allowed.lo - 1, allowed.hi + 1)
    return st.floats(allowed.lo - 1, allowed.hi + 1)


def _key_values() -> st.SearchStrategy[dict[str, Any]]:
    """Random TOML: for every recipe key, either its default, a value near its range, or anything at all."""
    tables: dict[str, Any] = {}
    for section, cls in _sections().items():
        fields_ = {}
        for f in dataclasses.fields(cls):
            key = f"{section}.{f.name}"
            near = _near(RANGES[key]) if key in RANGES else st.nothing()
            fields_[f.name] = st.none() | near | _VALUES
        tables[section] = st.fixed_dictionaries({}, optional=fields_) | _VALUES
    return st.fixed_dictionaries({}, optional={"target": st.sampled_from(["rpi", "coral"]) | _VALUES, **tables})


@PROPERTY
@given(tables=_key_values(), override=st.booleans())
def test_random_recipes_load_or_raise_input_error(tmp_path: Path, tables: dict[str, Any], override: bool) -> None:
    def drop_none(v: Any) -> Any:
        return {k: drop_none(x) for k, x in v.items() if x is not None} if isinstance(v, dict) else v

    path = _recipe_file(tmp_path, drop_none(tables))
    try:
        recipe = load_recipe(path, **({"quantise.float_ops": []} if override else {}))
    except InputError as exc:
        assert "\n" not in exc.message and str(path) in exc.message
        return
    assert isinstance(recipe, Recipe)
    for key, allowed in RANGES.items():
        section, name = key.split(".")
        assert getattr(getattr(recipe, section), name) in allowed


# ---- command line ------------------------------------------------------------------------------------

def _numeric(annotation: Any) -> bool:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        return _numeric(args[0])
    if annotation in (int, float):
        return True
    return bool(args) and any(_numeric(a) for a in args if a is not type(None) and a is not Ellipsis)


def _numeric_options() -> list[tuple[str, str, Any]]:
    found = []
    for command in app.registered_commands:
        callback = command.callback
        assert callback is not None
        hints = typing.get_type_hints(callback, include_extras=True)
        for name in inspect.signature(callback).parameters:
            if _numeric(hints[name]):
                info = next(m for m in typing.get_args(hints[name])[1:] if hasattr(m, "min"))
                found.append((command.name or callback.__name__, name, info))
    return found


def test_every_numeric_option_has_a_finite_range() -> None:
    options = _numeric_options()
    names = {(c, n) for c, n, _ in options}
    assert {("label", "window_seconds"), ("distill", "window_seconds"), ("live", "window_s"),
            ("predict", "threads")} <= names
    for command, name, info in options:
        assert info.min is not None and info.max is not None, f"{command} --{name} has no range"
        assert math.isfinite(info.min) and math.isfinite(info.max) and not info.clamp, f"{command} --{name}"


@pytest.mark.parametrize(("args", "option"), [
    (["label", "a.wav", "--window-seconds", "1e9"], "--window-seconds"),
    (["label", "a.wav", "--window-seconds", "inf"], "--window-seconds"),
    (["label", "a.wav", "--hop-seconds", "nan"], "--hop-seconds"),
    (["label", "a.wav", "--batch-size", "0"], "--batch-size"),
    (["distill", "--labels", "l.csv", "--window-seconds", "inf"], "--window-seconds"),
    (["distill", "--labels", "l.csv", "--window-seconds", "1e9"], "--window-seconds"),
    (["distill", "--labels", "l.csv", "--seed", "-1"], "--seed"),
    (["distill", "--labels", "l.csv", "--loss-weights", "1", "1", "inf"], "--loss-weights"),
    (["distill", "--labels", "l.csv", "--min-snr-db", "-inf"], "--min-snr-db"),
    (["live", "--window-s", "1e9"], "--window-s"),
    (["live", "--window-s", "inf"], "--window-s"),
    (["live", "--hop-s", "inf"], "--hop-s"),
    (["live", "--duration-s", "inf"], "--duration-s"),
    (["predict", "--model", "m.onnx", "a.wav", "--threads", "100000"], "--threads"),
])
def test_options_outside_their_range_are_usage_errors(tmp_path: Path, args: list[str], option: str) -> None:
    result = cli.invoke(app, args)
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"error: Invalid value for '{option}': Input should be ")
    assert line.endswith(f"(see 'edgeser {args[0]} --help')")


def test_live_hop_longer_than_the_window_is_refused_before_the_model_opens(tmp_path: Path) -> None:
    result = cli.invoke(app, ["live", "-b", str(tmp_path / "missing.onnx"), "--window-s", "1", "--hop-s", "2"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --hop-s (2) must be at most --window-s (1)"


# ---- library configs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"window_seconds": 1e9}, {"window_seconds": math.inf}, {"window_seconds": math.nan}, {"window_seconds": 0.0},
    {"hop_seconds": 1e9}, {"hop_seconds": math.inf}, {"batch_size": 10**9}, {"workers": 10**6},
    {"threads": 10**6},
])
def test_label_config_enforces_the_option_ranges(kwargs: dict[str, float]) -> None:
    (name, value), = kwargs.items()
    allowed = limits.LABEL[name]
    with pytest.raises(InputError, match=rf"^--{name.replace('_', '-')} must be {allowed.describe()}, got "):
        LabelConfig(**kwargs).validate()  # type: ignore[arg-type]


def test_label_refuses_a_huge_window_before_any_work(tmp_path: Path, corpus: Path, teacher_onnx: Path) -> None:
    from edgeser.audio import list_audio
    from edgeser.label import label

    out = tmp_path / "labels.csv"
    with pytest.raises(InputError, match="--window-seconds must be between 0.1 and 60"):
        label(list_audio(corpus), str(teacher_onnx), out, config=LabelConfig(window_seconds=1e9))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs", [
    {"window_seconds": 1e9}, {"window_seconds": math.inf}, {"epochs": 10**9}, {"batch_size": 10**9},
    {"lr": math.inf}, {"lr": 0.0}, {"ema": 1.0}, {"seed": -1}, {"seed": 2**40}, {"threads": 10**6},
    {"windows_per_epoch": 10**12}, {"weight_decay": math.nan},
])
def test_distill_config_enforces_the_option_ranges(kwargs: dict[str, float]) -> None:
    pytest.importorskip("torch")
    (name, value), = kwargs.items()
    allowed = limits.DISTILL[name]
    with pytest.raises(InputError, match=rf"^--{name.replace('_', '-')} must be {allowed.describe()}, got "):
        DistillConfig(**kwargs).validate()  # type: ignore[arg-type]


@pytest.mark.parametrize("weights", [(1.0, 1.0, math.inf), (1.0, math.nan, 1.0), (1.0, 1.0, 1e6), (0.0, 0.0, 0.0),
                                     (-1.0, 1.0, 1.0)])
def test_distill_loss_weights_are_bounded(weights: tuple[float, float, float]) -> None:
    pytest.importorskip("torch")
    with pytest.raises(InputError, match="--loss-weights needs 3 numbers"):
        DistillConfig(loss_weights=weights).validate()


# ---- streaming ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"window_ms": 1e12}, {"window_ms": math.inf}, {"window_ms": math.nan}, {"window_ms": 0.0}, {"window_ms": -5.0},
    {"hop_ms": 1e12}, {"hop_ms": math.inf}, {"hop_ms": math.nan}, {"hop_ms": 0.0},
    {"smoothing": math.nan}, {"smoothing": 1.0}, {"smoothing": -0.1},
])
def test_stream_config_refuses_absurd_values(kwargs: dict[str, float]) -> None:
    (name, _), = kwargs.items()
    with pytest.raises(ValueError, match=rf"^{name} must be between "):
        StreamConfig(**kwargs)  # type: ignore[arg-type]


def test_stream_config_range_ends_are_accepted() -> None:
    from edgeser.runtime.stream import HOP_MS_RANGE, MAX_SMOOTHING, WINDOW_MS_RANGE

    for window_ms, hop_ms in zip(WINDOW_MS_RANGE, HOP_MS_RANGE, strict=True):
        config = StreamConfig(window_ms=window_ms, hop_ms=hop_ms, smoothing=MAX_SMOOTHING)
        assert Streamer(FakeRunner(SR), config).window_samples == int(window_ms * SR / 1000)


@pytest.mark.parametrize("duration_s", [math.inf, math.nan, -1.0, 1e12])
def test_a_session_refuses_an_absurd_duration(duration_s: float) -> None:
    from edgeser.runtime.listen import ArraySource, listen

    with pytest.raises(ValueError, match="^duration_s must be between 0 and"):
        listen(FakeRunner(SR), source=ArraySource(np.zeros(SR, np.float32), SR, realtime=False),
               duration_s=duration_s)


def _stream_audio() -> np.ndarray:
    return np.concatenate([np.zeros(SR // 2, np.float32), speech_like(2.0), np.zeros(SR // 3, np.float32),
                           speech_like(0.7, f0=230)])


_AUDIO = _stream_audio()


@PROPERTY
@given(chunks=st.lists(st.integers(1, 9000), min_size=1, max_size=12),
       hop_ms=st.sampled_from([10.0, 40.0, 125.0, 250.0, 500.0]),
       window_ms=st.sampled_from([None, 500.0, 1000.0, 2500.0]), smoothing=st.sampled_from([0.0, 0.5]))
def test_any_chunking_gives_the_readings_of_one_chunk(chunks: list[int], hop_ms: float, window_ms: float | None,
                                                      smoothing: float) -> None:
    config = StreamConfig(hop_ms=hop_ms, window_ms=window_ms, smoothing=smoothing)
    whole = comparable(Streamer(FakeRunner(SR), config).feed(_AUDIO))
    streamer, got, pos, i = Streamer(FakeRunner(SR), config), [], 0, 0
    while pos < _AUDIO.size:
        size = chunks[i % len(chunks)]
        got += streamer.feed(_AUDIO[pos:pos + size])
        pos, i = pos + size, i + 1
    assert comparable(got) == whole
    assert len(whole) == _AUDIO.size // int(round(hop_ms * SR / 1000))
