"""Student registry: ``@register_model``, ``create_model(name, **overrides)``, ``list_models(pattern)``."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any, overload

from ..errors import InputError

__all__ = ["register_model", "create_model", "list_models"]

_MODELS: dict[str, Callable[..., Any]] = {}


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


def _ensure_loaded() -> None:
    from . import mobilenet, wav2small  # noqa: F401  (registers the variants)


def list_models(pattern: str = "*") -> list[str]:
    """Names of the registered students matching a shell-style pattern."""
    _ensure_loaded()
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def create_model(name: str, **overrides: Any) -> Any:
    """Build a student by name with optional hyper-parameter overrides.

    Raises:
        InputError: the name is not registered or an override is not a hyper-parameter of it.
    """
    _ensure_loaded()
    if name not in _MODELS:
        raise InputError(f"unknown student '{name}' (choose from: {', '.join(list_models())})")
    try:
        return _MODELS[name](**overrides)
    except TypeError as exc:
        raise InputError(f"bad hyper-parameters for '{name}': {exc}") from None
