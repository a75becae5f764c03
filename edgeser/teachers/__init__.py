"""Teachers: models that label audio with arousal, dominance, valence. Local paths only, never a hub.

:func:`load_teacher` accepts:
- ``None`` or ``"default"``: the embedded reference teacher (:func:`edgeser.defaults.default_teacher_path`);
- a ``.onnx`` file or a folder with ``model.onnx`` (audonnx layout too);
- a transformers folder (``config.json`` + weights) of audEERING's wav2vec2 A/D/V model or the
  Odyssey WavLM baseline (needs ``pip install 'edgeser[teachers]'``);
- several of these joined with ``+``: an ensemble that averages them.
"""

from __future__ import annotations

from pathlib import Path

from ..defaults import default_teacher_path
from ..errors import InputError
from .base import Teacher

__all__ = ["Teacher", "load_teacher"]


def _load_one(spec: str, *, output: str | None, threads: int) -> Teacher:
    from . import onnx

    if spec in ("", "default"):
        return onnx.load(default_teacher_path(), output=output, threads=threads)
    path = Path(spec)
    if not path.exists():
        raise InputError("teacher not found", path=path)
    if path.is_dir() and (path / "config.json").is_file() and not (path / "model.onnx").is_file():
        from .hf import load as load_hf

        return load_hf(path, threads=threads)
    return onnx.load(path, output=output, threads=threads)


def load_teacher(spec: str | Path | None = None, *, output: str | None = None, threads: int = 1) -> Teacher:
    """Load a teacher from a local path (or ``default``); ``a+b`` averages several.

    Raises:
        InputError: a path is missing, incomplete or not a supported layout.
    """
    text = "default" if spec is None else str(spec)
    parts = [p for p in text.split("+")] if "+" in text else [text]
    teachers = [_load_one(p.strip(), output=output, threads=threads) for p in parts]
    if len(teachers) == 1:
        return teachers[0]
    from .ensemble import Ensemble

    return Ensemble(teachers)
