"""Command line: one typer app; each command group lives in its own module and registers on import."""

from __future__ import annotations

from . import build, distill, drift, evaluate, live, predict  # noqa: F401  (register commands)
from ._app import app

__all__ = ["app"]
