"""How good is a model on your audio: agreement with a teacher and, when known, with human ratings.

:func:`evaluate` runs any model (a student checkpoint, an ``.onnx``/``.tflite`` file or a bundle) on
windows of audio, labels the same windows with a teacher (or reads a labels CSV written by ``edgeser
label``), and measures, per dimension, the concordance correlation coefficient (CCC), the Pearson
correlation and the mean offset (model minus reference), pooled and per speaker. When the audio list
gives human ratings (columns ``arousal``, ``dominance``, ``valence`` on the 0..1 scale) or emotion
categories (a column ``emotion``: EmoDB names such as ``anger`` or their German initials such as ``W``),
it measures the model, and the teacher, against those human-derived targets too. Categories become
targets through :data:`edgeser.defaults.CATEGORY_ADV`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .metrics import DIMENSIONS, ccc, pearson
from .progress import Reporter, silent

__all__ = ["CATEGORY_LETTERS", "MIN_WINDOWS", "Agreement", "Evaluation", "HumanTargets", "agreement", "evaluate",
           "human_targets"]

CATEGORY_LETTERS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "N": "neutral",
                    "T": "sadness"}
"""EmoDB's category codes (the German initial, 6th character of its file names) and their category names."""
MIN_WINDOWS = 2
"""Fewest windows CCC is defined on (tens, from several speakers, make a meaningful measurement)."""
MODEL_BATCH = 32
"""Windows per model call."""


@dataclass(frozen=True)
class Agreement:
    """How one set of A/D/V values follows a reference, per dimension."""

    windows: int
    ccc: tuple[float, ...]
    """Concordance correlation coefficient per dimension."""
    pearson: tuple[float, ...]
    """Pearson correlation per dimension."""
    offset: tuple[float, ...]
    """Mean of (values - reference) per dimension."""

    def to_dict(self) -> dict[str, Any]:
        return {"windows": self.windows, **{dim: {"ccc": self.ccc[i], "pearson": self.pearson[i],
                                                  "offset": self.offset[i]} for i, dim in enumerate(DIMENSIONS)}}


def agreement(values: np.ndarray, reference: np.ndarray) -> Agreement:
    """CCC, Pearson and mean offset of (N, 3) ``values`` against (N, 3) ``reference``, N >= 2."""
    values, reference = np.asarray(values, np.float64), np.asarray(reference, np.float64)
    return Agreement(len(values), tuple(float(x) for x in ccc(values, reference)),
                     tuple(float(x) for x in pearson(values, reference)),
                     tuple(float(x) for x in (values - reference).mean(0)))


@dataclass(frozen=True)
class HumanTargets:
    """Human-derived A/D/V targets of each window."""

    kind: str
    """``ratings`` (the list's arousal, dominance, valence columns) or ``categories`` (its emotion column)."""
    values: np.ndarray
    """(N, 3) targets on the models' 0..1 scale."""


@dataclass
class Evaluation:
    """A model's outputs on a set of windows beside the teacher's and, when known, human targets."""

    model: str
    """What was evaluated (a file name, or ``default student``)."""
    source: str
    """The audio list, folder or labels CSV the windows come from."""
    files: int
    window_seconds: float
    teacher: dict[str, str]
    """``name`` and ``identity`` of the teacher whose labels the model is compared with."""
    predictions: np.ndarray
    """(N, 3) the model's outputs."""
    teacher_labels: np.ndarray
    """(N, 3) the teacher's outputs on the same windows."""
    speakers: list[str] | None = None
    """Speaker of each window, when every file's speaker is known."""
    human: HumanTargets | None = None
    by_speaker: dict[str, np.ndarray] = field(init=False, repr=False)
    """Window indices of each speaker with at least :data:`MIN_WINDOWS` windows, sorted by name."""

    def __post_init__(self) -> None:
        names = np.array(self.speakers or [])
        groups = {str(s): np.flatnonzero(names == s) for s in sorted(set(self.speakers or []))}
        self.by_speaker = {s: idx for s, idx in groups.items() if len(idx) >= MIN_WINDOWS}

    @property
    def windows(self) -> int:
        return len(self.predictions)

    def vs_teacher(self) -> tuple[Agreement, dict[str, Agreement]]:
        """The model against the teacher: pooled, and per speaker."""
        return self._both(self.predictions, self.teacher_labels)

    def vs_human(self, who: str = "model") -> tuple[Agreement, dict[str, Agreement]] | None:
        """``model`` or ``teacher`` against the human-derived targets (None without them)."""
        if self.human is None:
            return None
        return self._both(self.predictions if who == "model" else self.teacher_labels, self.human.values)

    def _both(self, x: np.ndarray, y: np.ndarray) -> tuple[Agreement, dict[str, Agreement]]:
        return agreement(x, y), {s: agreement(x[idx], y[idx]) for s, idx in self.by_speaker.items()}

    def to_json(self) -> dict[str, Any]:
        """Everything measured, as plain JSON: accuracy (when human targets are known) first."""
        pooled, speakers = self.vs_teacher()
        out: dict[str, Any] = {
            "model": self.model,
            "audio": {"source": self.source, "files": self.files, "windows": self.windows,
                      "window_seconds": self.window_seconds,
                      "speakers": sorted(set(self.speakers)) if self.speakers else None},
            "teacher": dict(self.teacher),
            "human": None,
        }
        if self.human is not None:
            out["human"] = {"kind": self.human.kind, "accuracy": {}}
            for who in ("model", "teacher"):
                both = self.vs_human(who)
                assert both is not None  # human targets are known here
                out["human"]["accuracy"][who] = {"pooled": both[0].to_dict(),
                                                 "speakers": {s: a.to_dict() for s, a in both[1].items()}}
        out["agreement"] = {"pooled": pooled.to_dict(), "speakers": {s: a.to_dict() for s, a in speakers.items()}}
        return out


def _category(text: str, line: int, path: Path) -> tuple[float, float, float]:
    from .defaults import CATEGORY_ADV

    word = text.strip()
    name = CATEGORY_LETTERS.get(word.upper(), word.lower()) if len(word) == 1 else word.lower()
    if name not in CATEGORY_ADV:
        known = ", ".join(f"{k} ({letter})" for letter, k in CATEGORY_LETTERS.items())
        raise InputError(f"line {line}: unknown emotion {word!r} (known: {known})", path=path)
    return CATEGORY_ADV[name]


def _rating(row: dict[str, str], line: int, path: Path) -> tuple[float, ...]:
    out = []
    for dim in DIMENSIONS:
        text = row.get(dim, "").strip()
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"line {line}: {dim} is not a number ({text!r})", path=path) from None
        if not 0.0 <= value <= 1.0:  # also refuses nan
            raise InputError(f"line {line}: {dim} is {text}; human ratings must be on the models' 0..1 scale "
                             "(rescale them first, e.g. (x - 1) / 4 for a 1..5 scale)", path=path)
        out.append(value)
    return tuple(out)


def human_targets(path: Path, *, what: str, ratings: bool = True) -> tuple[str, dict[Path, np.ndarray]] | None:
    """Human-derived targets per audio file from a CSV's ``emotion`` or A/D/V columns, or None without them.

    Ratings (all three A/D/V columns) win over categories when a list has both. Relative file names are
    resolved against the CSV's folder.

    Args:
        path: the CSV (``file`` column plus ``emotion`` or the three A/D/V columns).
        what: what the file is, for messages.
        ratings: read the A/D/V columns as human ratings (not in a labels CSV, where they are the teacher's).

    Raises:
        InputError: a row's value is missing, unknown or out of range, or a file is listed twice with different
            targets (naming the line).
    """
    from .userfiles import read_csv_rows

    table = read_csv_rows(path, what=what)
    kind = ("ratings" if ratings and all(d in table.fields for d in DIMENSIONS)
            else "categories" if "emotion" in table.fields else None)
    if kind is None or "file" not in table.fields:
        return None
    targets: dict[Path, np.ndarray] = {}
    for line, row in zip(table.lines, table.rows, strict=True):
        value = np.array(_rating(row, line, path) if kind == "ratings" else _category(row["emotion"], line, path),
                         np.float32)
        f = Path(row["file"].strip())
        f = (f if f.is_absolute() else path.parent / f).resolve()
        if f in targets and not np.array_equal(targets[f], value):
            raise InputError(f"line {line}: {row['file']} is listed again with other targets", path=path)
        targets[f] = value
    return kind, targets


def _per_window(files: list[Path], targets: tuple[str, dict[Path, np.ndarray]] | None,
                source: Path) -> HumanTargets | None:
    if targets is None:
        return None
    kind, by_file = targets
    rows = []
    for f in files:
        value = by_file.get(f.resolve())
        if value is None:
            raise InputError(f"gives no {kind} for {f}", path=source)
        rows.append(value)
    return HumanTargets(kind, np.stack(rows))


def _predict(runner: Any, windows: np.ndarray, progress: Reporter) -> np.ndarray:
    task = progress.start("running the model", len(windows))
    out = []
    for i in range(0, len(windows), MODEL_BATCH):
        batch = windows[i:i + MODEL_BATCH]
        out.append(np.asarray(runner.predict(batch), np.float32))
        progress.advance(task, len(batch))
    return np.concatenate(out)


def _from_audio(runner: Any, source: Path, teacher: str | Path | None, teacher_output: str | None, threads: int,
                progress: Reporter) -> tuple[np.ndarray, np.ndarray, list[Path], list[str] | None, dict[str, str]]:
    """Windows of an audio list or folder, labelled by a teacher."""
    from .audio import AudioItem, list_audio
    from .build import collect_windows, label_windows
    from .labelfile import REQUIRED_COLUMNS
    from .teachers import load_teacher

    items = list_audio(source)
    if source.suffix.lower() == ".csv":
        from .userfiles import read_csv_rows

        fields = read_csv_rows(source, what="audio list").fields
        if all(c in fields for c in REQUIRED_COLUMNS):
            raise InputError("is a labels file (it has start_s, duration_s and teacher outputs): pass it with "
                             "--labels", path=source)
    wins = collect_windows([AudioItem(it.path) for it in items], runner.spec.window_samples, progress=progress)
    files = [Path(g) for g in wins.groups]  # grouped by file: each window's own file
    speaker_of = {str(it.path): it.speaker for it in items}
    speakers = [str(speaker_of[g]) for g in wins.groups] if all(it.speaker for it in items) else None
    if len(wins.data) < MIN_WINDOWS:
        raise InputError(f"gives {len(wins.data)} window of {runner.spec.window_samples} samples; CCC needs at "
                         f"least {MIN_WINDOWS} (tens, from several speakers, make a meaningful measurement)",
                         path=source)
    teach = load_teacher(teacher, output=teacher_output, threads=threads)
    labels = label_windows(teach, wins.data, progress=progress)
    return (wins.data, labels, files, speakers,
            {"name": str(teach.name), "identity": str(teach.identity)})


def _from_labels(path: Path, progress: Reporter) -> tuple[np.ndarray, np.ndarray, list[Path], list[str] | None,
                                                          dict[str, str]]:
    """The windows of a labels CSV (as labelled), with the teacher's labels it holds."""
    from .distill import load_windows
    from .labelfile import read_labels

    table = read_labels(path)
    if len(table) < MIN_WINDOWS:
        raise InputError(f"has {len(table)} labelled window; CCC needs at least {MIN_WINDOWS}", path=path)
    windows = load_windows(table, progress=progress)
    speakers = list(table.speakers) if all(table.speakers) else None
    return (windows, table.targets, list(table.files), speakers,
            {"name": f"labels in {path.name}", "identity": table.teacher or "unknown"})


def evaluate(model: Path | None = None, *, audio: str | Path | None = None, labels: str | Path | None = None,
             teacher: str | Path | None = None, teacher_output: str | None = None, threads: int = 1,
             progress: Reporter = silent, notify: Callable[[str], None] | None = None) -> Evaluation:
    """Measure a model against a teacher, and against human ratings when the audio list gives them.

    Args:
        model: a bundle folder or ``.tar.gz``, an ``.onnx``/``.tflite`` file, a student ``.safetensors``, or
            None for the embedded default student.
        audio: a folder, a list (``.csv`` with file[,speaker][,emotion | arousal,dominance,valence] columns,
            ``.txt``) or one file, cut into windows of the model's input length and labelled by ``teacher``.
            With ``labels``, only a ``.csv`` list's human targets are read from it. Default (neither given):
            the built-in calibration set.
        labels: a labels CSV written by ``edgeser label``: its windows and teacher labels are used as they
            are (no teacher runs); an ``emotion`` column in it gives categories.
        teacher: teacher path or ``a+b`` ensemble; default: the embedded reference teacher.
        teacher_output: output of an ONNX teacher to use.
        threads: inference threads for the model and the teacher.
        progress: progress reporter.
        notify: told in one line when a student checkpoint is converted to ONNX (the first time only).

    Raises:
        InputError: bad model, audio, labels, teacher or human targets; fewer than :data:`MIN_WINDOWS`
            windows; ``teacher`` given with ``labels`` (exit 2).
        VerifyError: a bundle that does not match its manifest (exit 6).
    """
    from .api import load

    if labels is not None and (teacher is not None or teacher_output is not None):
        raise InputError("--teacher and --teacher-output do not apply with --labels (the labels are the teacher's)")
    if audio is None and labels is None:
        from .defaults import calibration_list_path

        audio = calibration_list_path()
    with load(model, threads=threads, notify=notify) as opened:  # a bundle archive is unpacked until the end
        runner = opened.runner
        if labels is not None:
            source = Path(labels)
            windows, targets, files, speakers, teach = _from_labels(source, progress)
            lists = [source] + ([Path(audio)] if audio is not None and Path(audio).suffix.lower() == ".csv" else [])
        else:
            source = Path(str(audio))
            windows, targets, files, speakers, teach = _from_audio(runner, source, teacher, teacher_output,
                                                                    threads, progress)
            lists = [source] if source.suffix.lower() == ".csv" else []
        human = None
        for path in reversed(lists):  # an audio list given beside labels wins over the labels' own column
            own_labels = labels is not None and path == source
            found = human_targets(path, what="labels file" if own_labels else "audio list", ratings=not own_labels)
            if found is not None:
                human = _per_window(files, found, path)
                break
        predictions = _predict(runner, windows, progress)
        return Evaluation(model=opened.name, source=str(source), files=len(set(files)),
                          window_seconds=windows.shape[1] / runner.spec.sampling_rate, teacher=teach,
                          predictions=predictions, teacher_labels=np.asarray(targets, np.float32),
                          speakers=speakers, human=human)
