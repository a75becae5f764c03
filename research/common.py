"""What several research scripts share: the repository root, the default student's recipe, loading a tool.

Research scripts run from the repository root (``python research/<script>.py``), so Python puts
``research/`` first on the import path and ``from common import ...`` finds this module.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
"""The repository root."""
EMODB = Path("../shared/data/emodb")
"""Default EmoDB folder (``labels.csv`` and ``audio/``), relative to the repository root."""
F3_LESS = ("head_hidden", "head_softmax", "shape_stats")
"""What the probes drop from the default student's recipe to replay F3's (512-point layout, linear head)."""


def default_recipe(*, without: tuple[str, ...] = ()) -> Any:
    """The embedded default student's :class:`edgeser.distill.DistillConfig`, read from its metadata.

    Args:
        without: keys to drop from its ``student_config`` (their defaults then apply), e.g.
            :data:`F3_LESS` for F3's recipe.

    Returns:
        The configuration, with the filtered ``student_config``.
    """
    from edgeser.defaults import default_student_path
    from edgeser.distill import config_of

    recipe = config_of(default_student_path())
    return replace(recipe, student_config={k: v for k, v in recipe.student_config.items() if k not in without})


def tool(name: str) -> ModuleType:
    """Import ``tools/<name>.py`` (a script that rebuilds a shipped asset) as a module.

    Args:
        name: the script's file name without ``.py``.

    Returns:
        The imported module (registered in ``sys.modules`` under ``name``).
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
