"""The embedded defaults: reference teacher, default student and built-in calibration set.

Each function returns a path under :func:`edgeser.resources.assets_dir` and raises
:class:`~edgeser.errors.InputError` when that file is not installed. The model cards in
``docs/model-cards/`` say how each was made.
"""

from __future__ import annotations

from pathlib import Path

from .errors import InputError
from .resources import assets_dir

__all__ = [
    "DEFAULT_STUDENT",
    "DEFAULT_TEACHER",
    "CALIBRATION_LIST",
    "CATEGORY_ADV",
    "default_student_path",
    "default_teacher_path",
    "calibration_list_path",
]

DEFAULT_STUDENT = "wav2small.default.safetensors"
"""File name of the default Wav2Small student in the assets folder."""
DEFAULT_TEACHER = "reference_teacher.onnx"
"""File name of the reference teacher (ONNX, ``waveform`` (N, T) -> ``adv`` (N, 3))."""
CALIBRATION_LIST = Path("calibration") / "calibration.csv"
"""The built-in calibration/evaluation set: a CSV with columns file, speaker, emotion."""
CATEGORY_ADV: dict[str, tuple[float, float, float]] = {
    "anger": (0.865, 0.657, 0.167),
    "boredom": (0.139, 0.255, 0.167),
    "disgust": (0.775, 0.317, 0.052),
    "fear": (0.840, 0.293, 0.073),
    "happiness": (0.732, 0.850, 0.960),
    "neutral": (0.184, 0.357, 0.469),
    "sadness": (0.288, 0.164, 0.052),
}
"""The reference teacher's targets: (arousal, dominance, valence) of each EmoDB category word in the
NRC VAD Lexicon v1.0 (S. Mohammad, "Obtaining Reliable Human Ratings of Valence, Arousal, and Dominance
for 20,000 English Words", ACL 2018), which lists valence, arousal, dominance on 0..1."""


def _asset(relative: str | Path, what: str) -> Path:
    path = assets_dir() / relative
    if not path.is_file():
        raise InputError(
            f"the embedded {what} is not installed (reinstall edgeser or pass a path)", path=path
        )
    return path


def default_student_path() -> Path:
    """The default Wav2Small student checkpoint (safetensors, loads with :func:`edgeser.models.load`)."""
    return _asset(DEFAULT_STUDENT, "default student")


def default_teacher_path() -> Path:
    """The reference teacher ONNX file (what ``load_teacher("default")`` loads)."""
    return _asset(DEFAULT_TEACHER, "reference teacher")


def calibration_list_path() -> Path:
    """The calibration list (for :func:`edgeser.audio.list_audio`: file paths relative to it, with speakers)."""
    return _asset(CALIBRATION_LIST, "calibration set")
