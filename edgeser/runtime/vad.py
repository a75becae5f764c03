"""Voice-activity gate: frame energy against an adaptive noise floor, with hysteresis and a hangover.

The gate works on fixed frames (10 ms at 16 kHz by default) at absolute positions in the stream and
carries the remainder of each chunk over, so it opens and closes on the same samples whatever the
chunk size. It needs numpy only (this folder is copied into device bundles).

Rules, per frame (energy in dB relative to full scale, from the frame's RMS):

* the noise floor follows the quietest recent frames: it drops at once to a quieter frame and rises
  by at most ``floor_rise_db_per_s``; it never goes below ``open_dbfs - open_above_floor_db``, where
  the absolute threshold decides alone (so noise that starts after digital silence is learnt fast);
* the gate opens when the energy is ``open_above_floor_db`` over the floor *and* above
  ``open_dbfs``, for ``open_frames`` frames in a row;
* it closes when the energy has stayed under ``close_above_floor_db`` over the floor (or under
  ``open_dbfs``) for ``hangover_ms``.

An energy gate cannot tell speech from other loud sounds; it is here so that silence and steady
background noise produce no emotion readings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .spec import SAMPLING_RATE

__all__ = ["VadConfig", "EnergyGate", "SILENCE_DBFS", "frame_dbfs"]

SILENCE_DBFS = -100.0
"""Energy given to digital silence (and the lowest energy the gate reports), in dBFS."""


@dataclass(frozen=True)
class VadConfig:
    """Settings of the energy gate."""

    enabled: bool = True
    """False: every frame counts as speech (no gating)."""
    frame_ms: float = 10.0
    """Frame length in milliseconds."""
    open_dbfs: float = -50.0
    """Absolute floor: frames quieter than this never count as speech, in dBFS."""
    open_above_floor_db: float = 12.0
    """The gate opens this many dB above the noise floor."""
    close_above_floor_db: float = 6.0
    """The gate starts to close below this many dB above the noise floor (hysteresis)."""
    open_frames: int = 3
    """Loud frames in a row needed to open (30 ms at 10 ms frames)."""
    hangover_ms: float = 300.0
    """Quiet time needed to close, in milliseconds."""
    floor_rise_db_per_s: float = 5.0
    """Fastest upward drift of the noise floor, in dB per second."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VadConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def frame_dbfs(frames: np.ndarray) -> np.ndarray:
    """RMS energy of each row of ``frames`` (F, n) in dBFS, floored at :data:`SILENCE_DBFS`."""
    power = np.mean(np.square(frames, dtype=np.float64), axis=-1)
    energy: np.ndarray = np.maximum(10.0 * np.log10(np.maximum(power, 1e-30)), SILENCE_DBFS)
    return energy


class EnergyGate:
    """Streaming energy gate. Feed any chunk size; read which of its frames were speech.

    Args:
        config: gate settings.
        sampling_rate: input rate in Hz.
    """

    def __init__(self, config: VadConfig | None = None, *, sampling_rate: int = SAMPLING_RATE) -> None:
        self.config = config or VadConfig()
        self.frame_samples = max(1, int(round(self.config.frame_ms * sampling_rate / 1000.0)))
        """Samples per gate frame."""
        frame_s = self.frame_samples / sampling_rate
        self._rise_db_per_frame = self.config.floor_rise_db_per_s * frame_s
        self._floor_min_dbfs = self.config.open_dbfs - self.config.open_above_floor_db
        self._hangover_frames = max(1, int(round(self.config.hangover_ms / 1000.0 / frame_s)))
        self._rest = np.zeros(self.frame_samples, dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        """Forget the noise floor, the gate state and any carried-over samples."""
        self._rest_len = 0
        self.floor_dbfs: float | None = None
        """Current noise-floor estimate in dBFS (None before the first frame)."""
        self.is_open = False
        """Gate state after the last complete frame."""
        self._loud_run = 0
        self._quiet_run = 0

    def feed(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Process a chunk; return (energy_dbfs, open) for each frame completed by it.

        Args:
            chunk: float32 (n,) samples, any n >= 0.

        Returns:
            two arrays of equal length F (the frames this chunk completed): float64 energies in dBFS
            and booleans, True where the gate was open after that frame.
        """
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        n = self.frame_samples
        if self._rest_len + chunk.size < n:
            self._rest[self._rest_len:self._rest_len + chunk.size] = chunk
            self._rest_len += chunk.size
            return np.zeros(0), np.zeros(0, dtype=bool)
        head = n - self._rest_len
        first = np.concatenate([self._rest[:self._rest_len], chunk[:head]])
        body = chunk[head:]
        whole = body.size // n
        frames = np.concatenate([first[None], body[:whole * n].reshape(whole, n)])
        tail = body[whole * n:]
        self._rest[:tail.size] = tail
        self._rest_len = tail.size
        energy = frame_dbfs(frames)
        return energy, self._decide(energy)

    def _decide(self, energy: np.ndarray) -> np.ndarray:
        cfg = self.config
        states = np.empty(energy.size, dtype=bool)
        for i, e in enumerate(energy.tolist()):
            floor = e if self.floor_dbfs is None else min(e, self.floor_dbfs + self._rise_db_per_frame)
            floor = max(floor, self._floor_min_dbfs)
            self.floor_dbfs = floor
            loud = e >= max(cfg.open_dbfs, floor + cfg.open_above_floor_db)
            quiet = e < max(cfg.open_dbfs, floor + cfg.close_above_floor_db)
            self._loud_run = self._loud_run + 1 if loud else 0
            self._quiet_run = self._quiet_run + 1 if quiet else 0
            if not cfg.enabled:
                self.is_open = True
            elif not self.is_open and self._loud_run >= cfg.open_frames:
                self.is_open = True
            elif self.is_open and self._quiet_run >= self._hangover_frames:
                self.is_open = False
            states[i] = self.is_open
        return states
