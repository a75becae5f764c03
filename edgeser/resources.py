"""Locate the files edgeser ships: recipes, targets and assets, from a source tree or an installed wheel."""

from __future__ import annotations

from pathlib import Path

__all__ = ["package_dir", "recipes_dir", "targets_dir", "assets_dir"]

_PKG = Path(__file__).resolve().parent


def package_dir() -> Path:
    return _PKG


def _data(name: str) -> Path:
    installed = _PKG / "_data" / name  # hatchling force-include puts them here in a wheel
    if installed.is_dir():
        return installed
    return _PKG.parent / name  # source checkout / editable install


def recipes_dir() -> Path:
    """Folder of the ``<target>.toml`` recipes."""
    return _data("recipes")


def targets_dir() -> Path:
    """Folder of the per-target runner files (``targets/<target>/``)."""
    return _data("targets")


def assets_dir() -> Path:
    """Embedded default models and the built-in calibration set."""
    return _PKG / "assets"
