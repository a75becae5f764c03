"""Write augmented copies of audio clips (noise 5-30 dB SNR, speed 0.9-1.1, shifted crops, gain).

The teacher then labels the copies themselves (``edgeser label``), so the student learns what the
teacher says about noisy, faster or slower speech instead of assuming the clean clip's label still
holds. Writes 16 kHz FLAC files, ``list.csv`` (file, speaker) for the copies and ``clean.csv`` for the
originals that were used (absolute paths). Speakers in ``--exclude-speakers`` are left out entirely.

Usage::

    python tools/make_augmented_copies.py --list ../shared/data/emodb/labels.csv \
        --exclude-speakers 11 14 --copies 3 --out scratch/emodb_aug
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from edgeser.audio import SAMPLING_RATE, list_audio, load
from edgeser.augment import AugmentConfig, Augmenter

WINDOW_SECONDS = 2.0
CHUNK = 16
"""Clips augmented together (babble noise is drawn from the other clips of a chunk)."""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--list", type=Path, required=True, help="csv with file[,speaker] (paths relative to it)")
    p.add_argument("--out", type=Path, required=True, help="output folder, not committed (scratch/ is git-ignored)")
    p.add_argument("--exclude-speakers", nargs="*", default=[], help="speakers to leave out")
    p.add_argument("--copies", type=int, default=3, help="augmented copies per clip")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    items = [it for it in list_audio(args.list) if (it.speaker or "") not in set(args.exclude_speakers)]
    aug = Augmenter(AugmentConfig(noise_prob=0.8, crop_prob=0.5, speed_prob=0.6), seed=args.seed)
    window = int(WINDOW_SECONDS * SAMPLING_RATE)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = ["file,speaker"]
    clean = ["file,speaker"] + [f"{it.path.resolve()},{it.speaker or ''}" for it in items]
    clips = [load(it.path) for it in items]
    for k in range(args.copies):  # batches of different clips, so babble noise comes from other voices
        for start in range(0, len(items), CHUNK):
            chunk = clips[start : start + CHUNK]
            batch, _ = aug.batch(chunk, np.zeros((len(chunk), 3), np.float32), max(window, *map(len, chunk)))
            for it, y in zip(items[start : start + CHUNK], batch, strict=True):
                name = f"{it.path.stem}_aug{k}.flac"
                sf.write(args.out / name, y, SAMPLING_RATE, subtype="PCM_16")
                rows.append(f"{name},{it.speaker or ''}")
        print(f"copy {k + 1}/{args.copies} done", flush=True)
    (args.out / "list.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (args.out / "clean.csv").write_text("\n".join(clean) + "\n", encoding="utf-8")
    print(f"wrote {len(rows) - 1} copies of {len(items)} clips to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
