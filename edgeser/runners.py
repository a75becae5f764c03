"""Opening a model on the host as a runtime :class:`~edgeser.runtime.spec.Runner`, with edgeser's errors.

``edgeser predict`` and ``edgeser live`` take a bundle folder, a model file (``.onnx``, ``.tflite``) or a
student checkpoint (``.safetensors``); without one, ``live`` takes the embedded default student. A
checkpoint is exported once to a float ONNX file with the ``rpi`` recipe's export settings and cached
(:func:`cache_dir`), keyed by the checkpoint's sha256 and the edgeser version, so both commands share
the export. The device runtime's errors become edgeser errors: a bundle that does not match its
manifest is a :class:`~edgeser.errors.VerifyError` (exit 6), anything else that cannot be opened an
:class:`~edgeser.errors.InputError` (exit 2).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from .errors import InputError, OutputError, VerifyError
from .fileio import replacing, sha256_files
from .runtime.spec import SAMPLING_RATE, InputSpec, Runner

__all__ = ["EXPORT_RECIPE", "cache_dir", "student_window_samples", "default_runner", "open_runner", "open_any"]

EXPORT_RECIPE = "rpi"
"""Recipe whose export settings (opset, parity tolerance, window) turn a student into a runnable model."""
CHECKPOINT_SUFFIX = ".safetensors"
"""A path with this suffix is a student checkpoint, exported before it runs."""

Notify = Callable[[str], None]
"""Receives one line for the user (e.g. printed on stderr) when a slow step starts."""


def cache_dir() -> Path:
    """Cache folder: ``$EDGESER_CACHE``, else ``$XDG_CACHE_HOME/edgeser``, else ``~/.cache/edgeser``."""
    env = os.environ.get("EDGESER_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "edgeser"


def student_window_samples(student: Path, sampling_rate: int = SAMPLING_RATE) -> int:
    """The window a student was trained on (``window_seconds`` in its checkpoint's training facts), else
    the export recipe's window (2 s for ``rpi``), in samples."""
    from .models import read_metadata
    from .recipe import load_recipe

    try:
        facts = json.loads(read_metadata(student).get("extra", "{}"))
        seconds = facts.get("config", {}).get("window_seconds")
    except (json.JSONDecodeError, AttributeError):
        seconds = None
    if isinstance(seconds, int | float) and seconds > 0:
        return int(round(seconds * sampling_rate))
    return load_recipe(EXPORT_RECIPE).window_samples(sampling_rate)


def _export_student(student: Path, dest: Path) -> None:
    """Export a student checkpoint to a float ONNX file at ``dest``, atomically."""
    from .export.onnx import export
    from .models import load
    from .recipe import load_recipe

    with replacing(dest, suffix=".onnx") as tmp:
        export(load(student), tmp, recipe=load_recipe(EXPORT_RECIPE),
               spec=InputSpec(window_samples=student_window_samples(student)))


def default_runner(*, threads: int = 1, student: Path | None = None, notify: Notify | None = None) -> Runner:
    """A student checkpoint (the embedded default when ``student`` is None) as an ONNX runner, exported
    once and cached by checkpoint hash (``edgeser live`` and ``edgeser predict`` share the cache).

    Args:
        threads: inference threads.
        student: the checkpoint; None takes the embedded default student.
        notify: told in one line when the checkpoint is converted (the first time only).

    Raises:
        InputError: the default student is not installed (or ``student`` is missing).
        OutputError: the cache folder cannot be written.
    """
    if student is None:
        from .defaults import default_student_path

        student = default_student_path()
    if not student.is_file():
        raise InputError("student checkpoint not found", path=student)
    from . import __version__

    digest = sha256_files([student], extra=__version__.encode())[:16]
    dest = cache_dir() / "live" / f"{student.stem}.{digest}.onnx"
    if not dest.is_file():
        if notify is not None:
            notify(f"converting {student} to ONNX once (cached in {dest.parent})")
        try:
            _export_student(student, dest)
        except OSError as exc:
            raise OutputError(f"cannot write the exported model ({exc.strerror})", path=dest) from None
    return open_runner(dest, threads=threads)


def open_runner(path: Path, *, threads: int = 1) -> Runner:
    """Open a bundle folder or model file with :func:`edgeser.runtime.open_model`, mapping its errors.

    Raises:
        InputError: missing path, an engine that is not installed, or an unloadable model.
        VerifyError: a folder that is not a bundle or does not match its manifest.
    """
    from .runtime.engine import open_model
    from .runtime.integrity import BundleError

    try:
        return open_model(path, threads=threads)
    except BundleError as exc:
        raise VerifyError("; ".join(exc.problems), path=path) from None
    except (FileNotFoundError, ValueError, ImportError, KeyError, json.JSONDecodeError) as exc:
        message = str(exc).removeprefix(f"{path}: ")
        raise InputError(message or type(exc).__name__, path=path) from None


def open_any(model: Path | None, *, threads: int = 1, notify: Notify | None = None) -> tuple[Runner, str]:
    """Open what a user names as the model, and a short name for it.

    Args:
        model: a bundle folder, a model file, a student ``.safetensors`` (exported once, see
            :func:`default_runner`), or None for the embedded default student.
        threads: inference threads.
        notify: told in one line when a checkpoint is converted.

    Raises:
        InputError: the path does not exist, or cannot be opened or exported.
        VerifyError: a bundle that does not match its manifest.
        OutputError: the export cache cannot be written.
    """
    if model is None:
        return default_runner(threads=threads, notify=notify), "default student"
    if not model.exists():
        raise InputError("model not found", path=model)
    if model.is_file() and model.suffix == CHECKPOINT_SUFFIX:
        return default_runner(threads=threads, student=model, notify=notify), model.name
    return open_runner(model, threads=threads), model.name
