"""docs/recipes.md cannot drift from the code and the shipped recipes: every key, its default, its range."""

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from edgeser.recipe import RANGES, Recipe
from edgeser.resources import recipes_dir

DOC = Path(__file__).parents[1] / "docs" / "recipes.md"
TARGETS = ("rpi", "android", "coral")


def _keys(obj, prefix=""):
    for f in dataclasses.fields(obj):
        if f.name == "source":
            continue
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _keys(value, prefix + f.name + ".")
        else:
            yield prefix + f.name, value


def _flat(table, prefix=""):
    for k, v in table.items():
        if isinstance(v, dict):
            yield from _flat(v, prefix + k + ".")
        else:
            yield prefix + k, v


def _tables():
    """The two markdown tables of the page, as {key: [cells]}."""
    tables, current = [], None
    for line in DOC.read_text().splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            current[cells[0].strip("`")] = cells[1:]
        elif line.startswith("| key"):
            current = {}
            tables.append(current)
    return tables


def _value(cell):
    """A documented value: a TOML literal (quoted or not, in backticks or not)."""
    text = cell.replace("\\|", "|").strip().strip("`")
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _same(documented, actual):
    if isinstance(actual, float) and not isinstance(actual, bool):
        return isinstance(documented, int | float) and documented == pytest.approx(actual)
    return documented == actual


def test_every_key_is_documented_with_its_default_and_range():
    keys, shipped = _tables()
    defaults = dict(_keys(Recipe(target="x")))
    assert set(keys) == set(defaults), "keys documented but not in the code, or in the code but not documented"
    for key, value in defaults.items():
        kind, default = keys[key][0], keys[key][1]
        if key in ("target", "description"):
            continue
        assert _same(_value(default), value), f"{key}: docs say {default}, the code says {value!r}"
        if key in RANGES:
            lo, hi = RANGES[key].lo, RANGES[key].hi
            numbers = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", kind)]
            assert numbers == [float(lo), float(hi)], f"{key}: docs give the range {kind}, the code {lo} to {hi}"


@pytest.mark.parametrize("target", TARGETS)
def test_the_shipped_recipes_table_matches_each_toml(target):
    _, shipped = _tables()
    column = TARGETS.index(target)
    toml = dict(_flat(tomllib.loads((recipes_dir() / f"{target}.toml").read_text())))
    toml.pop("description")
    assert set(toml) <= set(shipped), f"{target}.toml sets keys the table does not list"
    for key, cells in shipped.items():
        cell = cells[column]
        if key not in toml:
            assert cell == "", f"{key}: the table gives {cell} for {target}, whose recipe leaves it out"
        else:
            assert _same(_value(cell), toml[key]), f"{key}: the table gives {cell}, {target}.toml says {toml[key]!r}"
