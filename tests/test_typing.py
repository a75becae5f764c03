"""The package type-checks: ``mypy`` in strict mode, configured by pyproject.toml's ``[tool.mypy]``."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_mypy_strict_passes(tmp_path: Path) -> None:
    pytest.importorskip("mypy", reason="needs mypy (pip install edgeser[dev])")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy-cache")],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, f"mypy failed:\n{proc.stdout}{proc.stderr}"
