"""The Python API: open a model once, then predict arousal, dominance and valence from waveforms or files.

:func:`load` takes what ``edgeser predict --model`` takes: nothing (the embedded default student), a bundle
folder or its ``.tar.gz``, an ``.onnx`` or ``.tflite`` file, or a student checkpoint (``.safetensors``,
exported to ONNX once and cached). Predictions go through the device runtime, exactly as on a device, and
carry the words of docs/outputs.md.

Examples:
    >>> from edgeser import load
    >>> model = load()  # doctest: +SKIP
    >>> model.predict_file("speech.wav")  # doctest: +SKIP
    Result(arousal=0.812 excited, dominance=0.601 dominant, valence=0.331 neutral, windows=1)
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, VerifyError
from .runtime.bands import Bands, load_bands
from .runtime.spec import DIMENSIONS, Runner

__all__ = ["load", "Model", "Result", "ARCHIVE_SUFFIX"]

ARCHIVE_SUFFIX = ".tar.gz"
"""A model path ending so is a bundle archive: checked, unpacked into a temporary folder and opened."""


@dataclass(frozen=True, repr=False, eq=False)
class Result:
    """A/D/V of one signal: the mean over its windows, and each window.

    Values are on the model's 0..1 scale (trained towards the teacher's; values slightly outside are
    possible). Signals up to 1.5 model windows long are one window; longer ones are cut into windows.
    """

    arousal: float
    """Mean arousal over the windows."""
    dominance: float
    """Mean dominance over the windows."""
    valence: float
    """Mean valence over the windows."""
    windows: int
    """Number of windows the model ran on."""
    per_window: np.ndarray
    """(windows, 3) arousal, dominance, valence of each window."""
    starts_s: np.ndarray
    """(windows,) start of each window, in seconds."""
    bands: dict[str, str]
    """The word of each dimension's mean (docs/outputs.md), e.g. ``{"arousal": "calm", ...}``."""

    @property
    def adv(self) -> tuple[float, float, float]:
        """(arousal, dominance, valence)."""
        return self.arousal, self.dominance, self.valence

    def to_dict(self) -> dict[str, Any]:
        """The fields of ``edgeser predict --json`` (less ``file``): arousal, dominance, valence, windows, bands."""
        return {"arousal": self.arousal, "dominance": self.dominance, "valence": self.valence,
                "windows": self.windows, "bands": dict(self.bands)}

    def __repr__(self) -> str:
        parts = ", ".join(f"{d}={v:.3f} {self.bands[d]}" for d, v in zip(DIMENSIONS, self.adv, strict=True))
        return f"Result({parts}, windows={self.windows})"


class Model:
    """An open model (see :func:`load`). Close it, or use it in a ``with`` block, to remove an unpacked archive.

    Attributes:
        name: the model's short name (its file or folder name, or ``default student``).
        runner: the device runtime's runner (:class:`edgeser.runtime.spec.Runner`).
        bands: the word bands (:class:`edgeser.runtime.bands.Bands`).
        bands_measured: True when the bands were measured on this very model (the default student, or a
            bundle built from it); other models may use the 0..1 scale differently.
    """

    def __init__(self, runner: Runner, *, name: str, bands: Bands, bands_measured: bool,
                 cleanup: Callable[[], None] | None = None) -> None:
        self.runner, self.name, self.bands, self.bands_measured = runner, name, bands, bands_measured
        self._finalizer = weakref.finalize(self, cleanup) if cleanup is not None else None

    @property
    def sampling_rate(self) -> int:
        """The rate the model takes, in Hz (other rates are resampled)."""
        return int(self.runner.spec.sampling_rate)

    @property
    def window_samples(self) -> int:
        """The window the model was calibrated on, in samples at :attr:`sampling_rate`."""
        return int(self.runner.spec.window_samples)

    def predict(self, waveform: Any, sampling_rate: int) -> Result:
        """A/D/V of a mono waveform (the mean over windows for long signals).

        Args:
            waveform: float samples in -1..1, shape (T,) (a (1, T) or (T, 1) array is taken as mono);
                a numpy array or anything ``numpy.asarray`` accepts.
            sampling_rate: its rate in Hz; resampled to :attr:`sampling_rate` when different.

        Returns:
            the mean over windows, each window, and the words.

        Raises:
            TypeError: integer samples (scale them to -1..1 first) or a non-integer rate.
            ValueError: not mono, shorter than 0.1 s, NaN or infinite, beyond +60 dBFS, or silent.

        Examples:
            >>> import numpy as np
            >>> t = np.arange(32_000) / 16_000
            >>> model.predict(0.1 * np.sin(2 * np.pi * 220 * t), 16_000)  # doctest: +SKIP
            Result(arousal=0.301 calm, dominance=0.402 neutral, valence=0.310 neutral, windows=1)
        """
        from .runtime.audiofile import resample
        from .runtime.predict import predict_signal

        x = _mono(waveform, sampling_rate)
        x = resample(x, int(sampling_rate), self.sampling_rate)
        _check_signal(x, self.sampling_rate)
        return self._result(predict_signal(self.runner, x))

    def predict_file(self, path: str | Path) -> Result:
        """A/D/V of an audio file (any format soundfile reads), read block by block.

        Raises:
            InputError: the file is missing, unreadable, shorter than 0.1 s, corrupt or silent.
        """
        return self._from_blocks(Path(path), None)

    def predict_bytes(self, data: bytes, *, name: str = "<bytes>") -> Result:
        """A/D/V of an audio file's bytes in memory (WAV, FLAC, OGG ...), e.g. an upload.

        Args:
            data: the file's bytes.
            name: names the audio in error messages.

        Raises:
            InputError: the bytes are not readable audio, or break the audio rules (see :meth:`predict_file`).
        """
        return self._from_blocks(Path(name), io.BytesIO(data))

    def stream(self, chunks: Iterable[Any], sampling_rate: int, *, hop_s: float = 0.5,
               window_s: float | None = None, smoothing: float = 0.0, vad: bool = True) -> Iterator[Any]:
        """Readings over a stream of audio chunks: one per hop, as ``edgeser live`` shows them.

        Args:
            chunks: mono float chunks of any sizes (a list, a generator, a queue reader).
            sampling_rate: their rate in Hz; resampled (streaming, exact under any chunking) when it differs.
            hop_s: seconds between readings.
            window_s: window in seconds; None takes the model's own.
            smoothing: moving-average weight of the previous reading, 0 (off) to 0.99.
            vad: skip windows without voice (their reading has ``adv`` None).

        Yields:
            :class:`edgeser.runtime.stream.Reading` (``end_s``, ``speech``, ``adv``, ``level_dbfs`` ...).
            An input that ends before its first hop still gets one reading over all of it.

        Raises:
            ValueError: a setting out of range, or a hop longer than the window.

        Examples:
            >>> for reading in model.stream(chunks, 48_000, hop_s=1.0):  # doctest: +SKIP
            ...     print(reading.end_s, reading.adv)
        """
        from .runtime.stream import RESAMPLER_TAPS_PER_SIDE, Resampler, StreamConfig, Streamer
        from .runtime.vad import VadConfig

        config = StreamConfig(window_ms=None if window_s is None else window_s * 1000.0, hop_ms=hop_s * 1000.0,
                              smoothing=smoothing, vad=VadConfig(enabled=vad))
        streamer = Streamer(self.runner, config)
        rate = _rate(sampling_rate)
        resampler = Resampler(rate, self.sampling_rate)
        taken = given = 0
        for chunk in chunks:
            x = _mono(chunk, rate, what="chunk")
            out = resampler(x)
            taken, given = taken + len(x), given + len(out)
            yield from streamer.feed(out)
        if not resampler.passthrough:  # the resampler lags by half its filter: flush it with silence, then cut
            due = int(round(taken * self.sampling_rate / rate)) - given
            tail = resampler(np.zeros(RESAMPLER_TAPS_PER_SIDE * -(-rate // self.sampling_rate) + 2, np.float32))
            yield from streamer.feed(tail[:max(0, due)])
        yield from streamer.flush()

    def word(self, dimension: str, value: float) -> str:
        """The band word of one value (e.g. ``model.word("valence", 0.2)``)."""
        return self.bands.word(dimension, value)

    def close(self) -> None:
        """Remove the temporary folder of an unpacked archive (nothing otherwise)."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Model({self.name!r}, {self.runner.backend}, {self.sampling_rate} Hz)"

    def _from_blocks(self, path: Path, fileobj: io.BytesIO | None) -> Result:
        from .runtime.audiofile import AudioError, blocks
        from .runtime.predict import predict_blocks

        try:
            return self._result(predict_blocks(self.runner, blocks(path, self.sampling_rate, fileobj=fileobj)))
        except AudioError as exc:
            raise InputError(exc.reason, path=exc.path) from None

    def _result(self, pred: Any) -> Result:
        a, d, v = (float(x) for x in pred.mean)
        return Result(a, d, v, len(pred.windows), np.asarray(pred.windows, dtype=np.float64),
                      np.asarray(pred.starts_s, dtype=np.float64), self.bands.words_for((a, d, v)))


def _rate(sampling_rate: Any) -> int:
    if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, int | np.integer):
        raise TypeError(f"sampling_rate must be an integer number of Hz, got {sampling_rate!r}")
    if sampling_rate <= 0:
        raise ValueError(f"sampling_rate must be positive, got {sampling_rate}")
    return int(sampling_rate)


def _mono(waveform: Any, sampling_rate: Any, *, what: str = "waveform") -> np.ndarray:
    """``waveform`` as float32 (T,), refusing integer samples and several channels."""
    _rate(sampling_rate)
    x = np.asarray(waveform)
    if not (np.issubdtype(x.dtype, np.floating)):
        raise TypeError(f"{what} must hold float samples in -1..1, got dtype {x.dtype} (for 16-bit PCM: "
                        "x / 32768)")
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise ValueError(f"{what} must be mono, shape (T,), got shape {x.shape}: mix the channels first "
                         "(e.g. x.mean(axis=1) for soundfile's (frames, channels))")
    return x.astype(np.float32, copy=False)


def _check_signal(x: np.ndarray, sampling_rate: int) -> None:
    """The audio file rules (:mod:`edgeser.runtime.audiofile`) for a signal in memory."""
    from .runtime.audiofile import MAX_PEAK, MIN_SECONDS, SILENCE_PEAK

    if len(x) < MIN_SECONDS * sampling_rate:
        raise ValueError(f"waveform is too short ({len(x) / sampling_rate * 1000:.0f} ms; at least "
                         f"{MIN_SECONDS * 1000:.0f} ms is needed)")
    if not np.isfinite(x).all():
        raise ValueError("waveform contains NaN or infinite samples")
    peak = float(np.abs(x).max())
    if peak > MAX_PEAK:
        raise ValueError(f"waveform samples reach {peak:.3g}, beyond {MAX_PEAK:g} (+60 dBFS): scale it to -1..1")
    if peak < SILENCE_PEAK:
        raise ValueError("waveform is silent (peak below -100 dBFS)")


def _student_sha256(model: Path | None) -> str | None:
    """sha256 of the student checkpoint behind ``model`` when known: itself, or a bundle's source student."""
    from .runtime.integrity import sha256_file

    if model is None:
        from .defaults import default_student_path

        return sha256_file(default_student_path())
    if model.is_file() and model.suffix == ".safetensors":
        return sha256_file(model)
    try:
        manifest = json.loads((model / "manifest.json").read_text(encoding="utf-8"))
        sha = manifest["student"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return sha if isinstance(sha, str) else None


def _unpack(archive: Path) -> tuple[Path, Callable[[], None]]:
    """Check a bundle archive and unpack it into a private temporary folder; the folder and its remover.

    Raises:
        VerifyError: the archive is corrupt, unsafe, or its bundle does not match the manifest (naming
            the archive).
    """
    from .bundle import _extract, verify

    tmp = Path(tempfile.mkdtemp(prefix="edgeser-bundle-"))

    def remove() -> None:
        shutil.rmtree(tmp, ignore_errors=True)

    try:
        folder = _extract(archive, tmp)
        try:
            verify(folder)
        except VerifyError as exc:
            raise VerifyError(exc.message.removeprefix(f"{exc.path}: "), path=archive) from None
    except BaseException:
        remove()
        raise
    return folder, remove


def load(model: str | Path | None = None, *, threads: int = 1, notify: Callable[[str], None] | None = None) -> Model:
    """Open a model for prediction.

    Args:
        model: None for the embedded default student; a bundle folder, or its ``.tar.gz`` (checked against
            its manifest and unpacked into a temporary folder, removed by :meth:`Model.close`); an ``.onnx``
            or ``.tflite`` file; or a student checkpoint ``.safetensors`` (exported to ONNX once, cached).
        threads: inference threads.
        notify: told in one line when a checkpoint is converted to ONNX (the first time only).

    Returns:
        the open model.

    Raises:
        InputError: the path does not exist or cannot be opened; an engine is not installed.
        VerifyError: a bundle (folder or archive) that does not match its manifest.
        OutputError: the export cache cannot be written.

    Examples:
        >>> from edgeser import load
        >>> with load("edgeser-rpi.tar.gz") as model:  # doctest: +SKIP
        ...     print(model.predict_file("speech.wav").bands)
        {'arousal': 'excited', 'dominance': 'dominant', 'valence': 'neutral'}
    """
    from .runners import open_any

    path = None if model is None else Path(model)
    cleanup = None
    name = "default student" if path is None else path.name
    if path is not None and path.name.endswith(ARCHIVE_SUFFIX) and path.is_file():
        path, cleanup = _unpack(path)
    try:
        runner, _ = open_any(path, threads=threads, notify=notify)
        try:
            bands = load_bands()
        except ValueError as exc:
            raise InputError(f"edgeser is not installed completely ({exc})") from None
        measured = bands.measured_on(_student_sha256(path))
    except BaseException:
        if cleanup is not None:
            cleanup()
        raise
    return Model(runner, name=name, bands=bands, bands_measured=measured, cleanup=cleanup)
