"""Recipes: per-target build settings, loaded from TOML and validated with clear errors.

Every key is documented on its dataclass field (and in docs/recipes.md). Unknown or ill-typed keys,
and numbers outside their range (:data:`RANGES`: inclusive, finite), are errors naming the key and the file.
"""

from __future__ import annotations

import tomllib
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import InputError
from .limits import SEED, THREADS, WINDOW_SECONDS, Range
from .resources import recipes_dir
from .runtime.spec import SAMPLING_RATE

__all__ = ["Recipe", "DataConfig", "ExportConfig", "QuantiseConfig", "DriftConfig", "RuntimeConfig",
           "BundleConfig", "load_recipe", "list_targets", "RANGES", "ONNX_OPSETS"]

ONNX_OPSETS = Range(13, 23)
"""ONNX opsets the exporter supports: 13 (the first with per-channel QuantizeLinear, which the int8 models
need) to 23 (the newest torch.onnx writes)."""


@dataclass
class DataConfig:
    """Which audio windows calibrate the quantiser and which measure drift."""

    window_seconds: float = 2.0
    """Window length in seconds: the model's input during calibration and evaluation."""
    calibration_windows: int = 64
    """Windows used to calibrate the quantiser; fewer available is an error."""
    min_evaluation_windows: int = 32
    """Fewest held-out windows drift may be measured on; fewer is an error."""
    evaluation_fraction: float = 0.5
    """Share of speakers (or files, when speakers are unknown) held out for the drift evaluation."""
    seed: int = 0
    """Seed for choosing the calibration windows."""


@dataclass
class ExportConfig:
    """How the float model is exported and checked."""

    format: str = "onnx"
    """``onnx`` or ``tflite``."""
    opset: int = 17
    """ONNX opset (13 to 23, :data:`ONNX_OPSETS`)."""
    parity_tolerance: float = 1e-4
    """Largest allowed |exported - torch| on a fixed input before the export is rejected (exit 4)."""
    layout: str = "plain"
    """ONNX only: ``plain`` (the student as trained) or ``fast`` (a student with ``export_view()``, i.e.
    Wav2Small, is exported through an exact re-parameterisation that onnxruntime runs faster in float and
    int8: time-last, 16-channel, shifted first conv; docs/int8-speed.md)."""
    frontend: str = "model"
    """TFLite only: ``model`` (the file takes the waveform) or ``cpu-logmel`` (the runner computes the
    log-mel in numpy and the file holds the conv body and head only, so an integer accelerator runs all of it)."""


@dataclass
class QuantiseConfig:
    """Post-training quantisation."""

    scheme: str = "int8-static-qdq"
    """``int8-static-qdq`` (onnxruntime static QDQ), ``none`` (ship float) or a TFLite scheme."""
    float_ops: list[str] = field(default_factory=lambda: ["frontend", "softmax"])
    """Parts kept in float: ``frontend`` (normalisation, STFT power, mel, log), ``softmax`` (time attention),
    ``head`` (Gram matrix and linear head)."""
    per_channel: bool = True
    """Per-output-channel weight scales."""
    reduce_range: str = "auto"
    """``auto`` (try 7-bit and 8-bit weights, keep the one closer to float on calibration windows),
    ``true`` or ``false``."""
    activations: str = "uint8"
    """Activation type: ``uint8`` (u8s8 kernels, the fast path of onnxruntime on x86 and Arm) or ``int8``."""
    calibrate_method: str = "minmax"
    """``minmax``, ``entropy`` or ``percentile`` (onnxruntime calibrators)."""
    variants: list[str] = field(default_factory=lambda: ["int8"])
    """Quantised variants to produce and measure (TFLite targets: ``float16``, ``int8-dynamic``, ``int8``...)."""
    require_int8: bool = False
    """Fail the build (exit 4) when any op of the ``int8`` variant is not int8 (integer accelerators)."""


@dataclass
class DriftConfig:
    """The gate: how far the quantised model may move from the float one."""

    max_ccc_drop: float = 0.01
    """Largest allowed |CCC(quantised, teacher) - CCC(float, teacher)| per dimension."""
    min_ccc_vs_float: float = 0.98
    """Smallest allowed CCC(quantised, float) per dimension."""


@dataclass
class RuntimeConfig:
    """How the device runs the model."""

    backend: str = "onnx"
    """``onnx`` (onnxruntime) or ``litert`` (ai_edge_litert)."""
    threads: int = 1
    """Intra-op threads on the device."""


@dataclass
class BundleConfig:
    """What goes into the bundle."""

    ship: str = "int8"
    """Which variant ships: ``float`` or one of ``quantise.variants``."""
    python: str = ">=3.11,<3.14"
    """Python versions the runner supports on the device."""


@dataclass
class Recipe:
    """A target's build recipe (``recipes/<target>.toml``)."""

    target: str
    """Target name: ``rpi``, ``android`` or ``coral``."""
    description: str = ""
    """One line shown in reports."""
    data: DataConfig = field(default_factory=DataConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    quantise: QuantiseConfig = field(default_factory=QuantiseConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    bundle: BundleConfig = field(default_factory=BundleConfig)
    source: str = ""
    """File the recipe was read from (set by the loader)."""

    def window_samples(self, sampling_rate: int = SAMPLING_RATE) -> int:
        return int(round(self.data.window_seconds * sampling_rate))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_CHOICES: dict[str, tuple[str, ...]] = {
    "export.format": ("onnx", "tflite"),
    "quantise.reduce_range": ("auto", "true", "false"),
    "quantise.calibrate_method": ("minmax", "entropy", "percentile"),
    "quantise.activations": ("uint8", "int8"),
    "runtime.backend": ("onnx", "litert"),
    "export.frontend": ("model", "cpu-logmel"),
    "export.layout": ("plain", "fast"),
}
_FLOAT_OPS = ("frontend", "softmax", "head")

RANGES: dict[str, Range] = {
    "data.window_seconds": WINDOW_SECONDS,
    "data.calibration_windows": Range(1, 4096),
    "data.min_evaluation_windows": Range(2, 1_000_000),
    "data.evaluation_fraction": Range(0.01, 0.99),
    "data.seed": SEED,
    "export.opset": ONNX_OPSETS,
    "export.parity_tolerance": Range(1e-9, 1.0),
    "drift.max_ccc_drop": Range(0.0, 2.0),
    "drift.min_ccc_vs_float": Range(-1.0, 1.0),
    "runtime.threads": THREADS,
}
"""The range of every numeric recipe key (inclusive, finite), checked when a recipe is loaded."""


def _check_type(value: Any, tp: Any, key: str, path: Path) -> Any:
    origin = typing.get_origin(tp)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list) or not all(isinstance(v, item) for v in value):
            raise InputError(f"recipe key '{key}' must be a list of {item.__name__}", path=path)
        return list(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is str and isinstance(value, bool):  # reduce_range = true
        return str(value).lower()
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        got = type(value).__name__
        raise InputError(f"recipe key '{key}' must be {tp.__name__}, got {got} {value!r}", path=path)
    return value


def _build(cls: type, table: dict[str, Any], prefix: str, path: Path) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)} - {"source"}
    for key in table:
        if key not in names:
            raise InputError(f"unknown recipe key '{prefix}{key}' (known: {', '.join(sorted(names))})", path=path)
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in table:
            if f.default is MISSING and f.default_factory is MISSING:
                raise InputError(f"recipe is missing required key '{prefix}{f.name}'", path=path)
            continue
        tp, value, key = hints[f.name], table[f.name], prefix + f.name
        if isinstance(tp, type) and hasattr(tp, "__dataclass_fields__"):
            if not isinstance(value, dict):
                raise InputError(f"recipe key '{key}' must be a table [{key}]", path=path)
            kwargs[f.name] = _build(tp, value, key + ".", path)
            continue
        if isinstance(tp, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        value = _check_type(value, tp, key, path)
        if key in _CHOICES and value not in _CHOICES[key]:
            raise InputError(f"recipe key '{key}' must be one of {', '.join(_CHOICES[key])}, got {value!r}",
                             path=path)
        kwargs[f.name] = value
    return cls(**kwargs)


def _validate(r: Recipe, path: Path) -> None:
    for key, allowed in RANGES.items():
        section, name = key.split(".")
        value = getattr(getattr(r, section), name)
        if value not in allowed:
            raise InputError(f"recipe key '{key}' must be {allowed.describe()}, got {value!r}", path=path)
    checks = [
        (all(op in _FLOAT_OPS for op in r.quantise.float_ops),
         f"quantise.float_ops may only name {', '.join(_FLOAT_OPS)}"),
        (r.export.frontend == "model" or r.export.format == "tflite",
         "export.frontend 'cpu-logmel' needs export.format = 'tflite'"),
        (r.bundle.ship == "float" or r.bundle.ship in r.quantise.variants,
         "bundle.ship must be 'float' or one of quantise.variants"),
    ]
    for ok, message in checks:
        if not ok:
            raise InputError(message, path=path)


def list_targets() -> list[str]:
    """Targets with a recipe shipped in edgeser."""
    return sorted(p.stem for p in recipes_dir().glob("*.toml"))


def load_recipe(target_or_path: str | Path, **overrides: Any) -> Recipe:
    """Load ``recipes/<target>.toml`` by target name, or a recipe file by path.

    Args:
        target_or_path: ``rpi`` / ``android`` / ``coral``, or a path to a ``.toml`` file.
        overrides: dotted keys to override after loading, e.g. ``{"quantise.float_ops": []}``.

    Raises:
        InputError: unknown target, unreadable TOML, unknown or ill-typed key, or a value outside its range
            (:data:`RANGES`) or otherwise invalid.
    """
    text = str(target_or_path)
    path = Path(text) if (text.endswith(".toml") or Path(text).is_file()) else recipes_dir() / f"{text}.toml"
    if not path.is_file():
        if path.parent == recipes_dir():
            raise InputError(f"unknown target '{text}' (available: {', '.join(list_targets())})")
        raise InputError("recipe file not found", path=path)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"invalid TOML ({exc})", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot read the recipe ({exc.strerror})", path=path) from None
    for dotted, value in overrides.items():
        node = table
        *parents, leaf = dotted.split(".")
        for i, p in enumerate(parents):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                key = ".".join(parents[:i + 1])
                raise InputError(f"recipe key '{key}' must be a table [{key}]", path=path)
        node[leaf] = value
    recipe: Recipe = _build(Recipe, table, "", path)
    recipe.source = str(path)
    _validate(recipe, path)
    return recipe
