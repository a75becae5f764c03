"""Teachers: models that label audio with arousal, dominance, valence. Local paths only, never a hub.

:func:`load_teacher` accepts:
- ``None`` or ``"default"``: the embedded reference teacher (:func:`edgeser.defaults.default_teacher_path`);
- a ``.onnx`` file or a folder with ``model.onnx`` (audonnx layout too);
- a transformers folder (``config.json`` + weights) of audEERING's wav2vec2 A/D/V model or the
  Odyssey WavLM baseline (needs ``pip install 'edgeser[teachers]'``);
- several of these joined with ``+``: an ensemble that averages them.

Where a teacher runs: ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``) and ``precision`` (``fp32``;
``bf16`` or ``fp16`` autocast for transformers teachers on CUDA), resolved by :mod:`edgeser.devices`.
The identity (what label caches are keyed by) does not depend on the device, but a reduced precision
changes the numbers, so it is part of the identity (:func:`precision_identity`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..defaults import default_teacher_path
from ..devices import Placement
from ..errors import InputError
from .base import Teacher

__all__ = ["Teacher", "load_teacher", "precision_identity"]


def precision_identity(identity: str, precision: str) -> str:
    """A teacher's identity at a precision: unchanged for fp32, else suffixed (``...-bf16``)."""
    return identity if precision == "fp32" else f"{identity}-{precision}"


def _onnx_providers(device: str, placement: Placement | None) -> list[Any]:
    """Providers for an ONNX teacher; ``auto`` takes CUDA only when both torch and onnxruntime have it."""
    from ..devices import onnx_providers, resolve

    if placement is None:
        if device.strip().lower() == "auto":
            import onnxruntime as ort

            if "CUDAExecutionProvider" not in ort.get_available_providers():
                return ["CPUExecutionProvider"]
        placement = resolve(device)
    if placement.precision != "fp32":
        raise InputError(f"--precision {placement.precision} applies to transformers teachers; an ONNX teacher "
                         "runs at the precision of its model (use --precision fp32)")
    return onnx_providers(placement)


def _load_one(spec: str, *, output: str | None, threads: int, device: str, placement: Placement | None) -> Teacher:
    from . import onnx

    if spec in ("", "default"):
        return onnx.load(default_teacher_path(), output=output, threads=threads,
                         providers=_onnx_providers(device, placement))
    path = Path(spec)
    if not path.exists():
        raise InputError("teacher not found", path=path)
    if path.is_dir() and (path / "config.json").is_file() and not (path / "model.onnx").is_file():
        from ..devices import resolve
        from .hf import load as load_hf

        return load_hf(path, threads=threads, placement=placement or resolve(device))
    return onnx.load(path, output=output, threads=threads, providers=_onnx_providers(device, placement))


def load_teacher(spec: str | Path | None = None, *, output: str | None = None, threads: int = 1,
                 device: str = "cpu", precision: str = "fp32", placement: Placement | None = None) -> Teacher:
    """Load a teacher from a local path (or ``default``); ``a+b`` averages several.

    Args:
        spec: the teacher (see the module docstring).
        output: the ONNX output to read.
        threads: intra-op threads of its engine.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (see :func:`edgeser.devices.resolve`).
        precision: ``fp32``, or ``bf16``/``fp16`` autocast on CUDA (transformers teachers only).
        placement: an already resolved device and precision; replaces ``device`` and ``precision``.

    Raises:
        InputError: a path is missing, incomplete or not a supported layout; the device is not available
            here; or a reduced precision was asked of an ONNX teacher.
    """
    if placement is None and precision != "fp32":
        from ..devices import resolve

        placement = resolve(device, precision)
    text = "default" if spec is None else str(spec)
    parts = [p for p in text.split("+")] if "+" in text else [text]
    teachers = [_load_one(p.strip(), output=output, threads=threads, device=device, placement=placement)
                for p in parts]
    if len(teachers) == 1:
        teacher = teachers[0]
    else:
        from .ensemble import Ensemble

        teacher = Ensemble(teachers)
    teacher.identity = precision_identity(teacher.identity, placement.precision if placement else "fp32")
    return teacher
