"""Audio input: any file soundfile reads, mixed to mono, resampled to 16 kHz (soxr), cut into windows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .runtime.spec import SAMPLING_RATE  # every model in edgeser takes 16 kHz mono float32 waveforms

__all__ = [
    "SAMPLING_RATE",
    "AudioItem",
    "load",
    "fit_length",
    "windows",
    "list_audio",
    "audio_extensions",
]


@dataclass(frozen=True)
class AudioItem:
    """One audio file and, when the list says so, who speaks in it."""

    path: Path
    """Path of the audio file."""
    speaker: str | None = None
    """Speaker identity, used to keep calibration and evaluation speakers apart."""


def load(path: str | Path, *, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """Read an audio file as mono float32 at ``sampling_rate``, with the device reader's rules.

    Args:
        path: any format libsndfile reads (WAV, FLAC, OGG, MP3 with libsndfile >= 1.1 ...).
        sampling_rate: output rate in Hz; resampled with soxr (high quality) when the file differs.

    Returns:
        float32 array of shape (T,).

    Raises:
        InputError: the file is missing, unreadable, empty, shorter than 0.1 s, non-finite, beyond
            +60 dBFS or silent-only (:mod:`edgeser.runtime.audiofile`).
    """
    from .runtime.audiofile import AudioError, read

    try:
        return read(path, sampling_rate)
    except AudioError as exc:
        raise InputError(exc.reason, path=exc.path) from None


def fit_length(x: np.ndarray, samples: int) -> np.ndarray:
    """Zero-pad (at the end) or cut ``x`` to exactly ``samples`` samples."""
    if x.shape[-1] >= samples:
        return x[..., :samples]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, samples - x.shape[-1])]
    return np.pad(x, pad)


def windows(x: np.ndarray, window_samples: int, hop_samples: int | None = None) -> np.ndarray:
    """Cut a waveform into windows, as a strided view (no copy).

    A signal shorter than one window is zero-padded to one window. The tail that does not fill a
    whole window is dropped unless it is the only window.

    Args:
        x: float32 (T,).
        window_samples: window length in samples.
        hop_samples: hop in samples, default ``window_samples`` (no overlap).

    Returns:
        array of shape (W, window_samples).

    Examples:
        >>> windows(np.arange(10, dtype=np.float32), 4, 3).shape
        (3, 4)
    """
    if window_samples <= 0:
        raise ValueError(f"window_samples must be positive, got {window_samples}")
    hop = window_samples if hop_samples is None else hop_samples
    if hop <= 0:
        raise ValueError(f"hop_samples must be positive, got {hop}")
    if x.shape[0] < window_samples:
        x = fit_length(x, window_samples)
    view = np.lib.stride_tricks.sliding_window_view(x, window_samples)
    return view[::hop]


def audio_extensions() -> set[str]:
    """File name endings (lower case, with the dot) that libsndfile can read here."""
    import soundfile as sf

    return {"." + ext.lower() for ext in sf.available_formats()} | {".oga", ".opus"}


def _resolve(name: str, base: Path) -> Path:
    path = Path(name)
    return path if path.is_absolute() else base / path


def _from_csv(path: Path) -> list[AudioItem]:
    from .userfiles import read_csv_rows

    table = read_csv_rows(path, what="audio list")
    if "file" not in table.fields:
        raise InputError(f"audio list needs a 'file' column (has: {', '.join(table.fields) or 'none'})", path=path)
    items = []
    for line, row in zip(table.lines, table.rows, strict=True):
        if not row["file"].strip():
            raise InputError(f"line {line}: the file column is empty", path=path)
        items.append(AudioItem(_resolve(row["file"], path.parent), row.get("speaker") or None))
    return items


def _from_txt(path: Path) -> list[AudioItem]:
    from .userfiles import read_text

    lines = [ln.strip() for ln in read_text(path, what="audio list").splitlines()]
    return [AudioItem(_resolve(ln, path.parent)) for ln in lines if ln]


def list_audio(source: str | Path | Iterable[str | Path]) -> list[AudioItem]:
    """Resolve a folder, a list file or a sequence of paths into audio items.

    Args:
        source: a folder (searched recursively for readable audio), a ``.csv`` with a ``file`` column
            and an optional ``speaker`` column (paths relative to the csv), a ``.txt`` with one path
            per line (list files: UTF-8, or UTF-16/32 with a byte-order mark), a single audio file, or an
            iterable of paths.

    Returns:
        items in a stable (sorted) order.

    Raises:
        InputError: the source does not exist, names no audio, or a list file is malformed.
    """
    if not isinstance(source, str | Path):
        items = [AudioItem(Path(p)) for p in source]
    else:
        src = Path(source)
        if not src.exists():
            raise InputError("audio source not found", path=src)
        if src.is_dir():
            exts = audio_extensions()
            items = [AudioItem(p) for p in sorted(src.rglob("*")) if p.is_file() and p.suffix.lower() in exts]
        elif src.suffix.lower() == ".csv":
            items = _from_csv(src)
        elif src.suffix.lower() == ".txt":
            items = _from_txt(src)
        else:
            items = [AudioItem(src)]
    if not items:
        raise InputError("no audio files found", path=Path(str(source)) if isinstance(source, str | Path) else None)
    return items
