"""Student registry: ``@register_model``, ``create_model(name, **overrides)``, ``list_models(pattern)``.

The model modules register their variants with the decorator; :mod:`edgeser.models` imports them, so the
registry is full once the package is imported, and the registry imports no model back.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable
from typing import Any, overload

from ..errors import InputError

__all__ = ["register_model", "create_model", "list_models", "MAX_SIZES"]

_MODELS: dict[str, Callable[..., Any]] = {}

MAX_SIZES: dict[str, int] = {
    "channels": 512,
    "n_fft": 4096,
    "hop_length": 4096,
    "n_mels": 1024,
    "mel_bands": 1024,
    "head_hidden": 4096,
    "head_features": 4096,
    "sampling_rate": 192_000,
}
"""Largest value of each size hyper-parameter any student takes, checked before a student is built (so a
checkpoint's metadata cannot ask for a model that does not fit in memory). The variants check the rest."""


Variant = Callable[..., Any]


@overload
def register_model(fn: Variant, *, name: str | None = None) -> Variant: ...
@overload
def register_model(fn: None = None, *, name: str | None = None) -> Callable[[Variant], Variant]: ...
def register_model(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Register a variant function under ``name`` (default: the function name)."""

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        _MODELS[name or f.__name__] = f
        return f

    return deco(fn) if fn is not None else deco


def list_models(pattern: str = "*") -> list[str]:
    """Names of the registered students matching a shell-style pattern."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def _check_sizes(overrides: dict[str, Any]) -> None:
    for key, most in MAX_SIZES.items():
        value = overrides.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and not (
                math.isfinite(value) and value <= most):
            raise InputError(f"{key} must be at most {most}, got {value}")


def create_model(name: str, **overrides: Any) -> Any:
    """Build a student by name with optional hyper-parameter overrides.

    Raises:
        InputError: the name is not registered, an override is not a hyper-parameter of it, or a size is over
            :data:`MAX_SIZES` or out of the variant's range.
    """
    if name not in _MODELS:
        raise InputError(f"unknown student '{name}' (choose from: {', '.join(list_models())})")
    _check_sizes(overrides)
    try:
        return _MODELS[name](**overrides)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"bad hyper-parameters for '{name}': {exc}") from None
