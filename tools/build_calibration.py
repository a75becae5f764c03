"""Build edgeser's built-in calibration/evaluation set from EmoDB (speakers 11 and 14).

Copies every clip of one male (11) and one female (14) EmoDB speaker into
``edgeser/assets/calibration/`` as 16 kHz, 16-bit FLAC (highest compression), writes
``calibration.csv`` (file, speaker, emotion) and a README with the provenance, and checks the total
stays within the 5 MB budget. Neither the reference teacher nor the default student is trained on
these two speakers.

Usage (from the repository root)::

    python tools/build_calibration.py --data ../shared/data/emodb --out edgeser/assets/calibration
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import tempfile
from pathlib import Path

import soundfile as sf

SPEAKERS = ("11", "14")
"""EmoDB speakers in the set: 11 (male), 14 (female)."""
BUDGET_BYTES = 5_000_000
SAMPLING_RATE = 16_000
README = """# Built-in calibration and evaluation set

{count} utterances of two speakers of the Berlin Database of Emotional Speech (EmoDB): speaker 11
(male, {male} clips) and speaker 14 (female, {female} clips), every clip they recorded, as 16 kHz
mono 16-bit FLAC ({size:.2f} MB in all). `calibration.csv` lists file, speaker and emotion (EmoDB's
category; edgeser never trains on it).

`edgeser build` with no `--audio` quantises and measures drift on these files: one speaker's
windows calibrate the quantiser and the other speaker's windows measure drift. Neither edgeser's
reference teacher nor its default Wav2Small student saw these two speakers in training
(docs/model-cards/), so the set also serves as a speaker-independent check of both.

## Provenance

- Source: EmoDB, F. Burkhardt, A. Paeschke, M. Rolfes, W. Sendlmeier, B. Weiss, "A Database of
  German Emotional Speech", Proc. Interspeech 2005. 10 actors read 10 German sentences in 7
  emotions (anger, boredom, disgust, fear, happiness, neutral, sadness).
- This copy was taken from the project's development copy of EmoDB (`shared/data/emodb`), which
  came from a public mirror that had already cut or zero-padded every utterance to exactly 2.0 s
  and resampled it to 22.05 kHz; it was then resampled to 16 kHz. The clips here are those files,
  re-encoded losslessly by `tools/build_calibration.py`.
- File names are EmoDB's: speaker (2 digits), sentence code (3 characters), emotion letter
  (German initial: W anger, L boredom, E disgust, A fear, F happiness, N neutral, T sadness),
  version letter.

## Licence

EmoDB is released by audEERING under CC0 1.0 (other redistributions state CC BY 4.0). Please cite
the paper above when you use these files.
"""


def _flac_bytes(path: Path) -> bytes:
    data, rate = sf.read(str(path), dtype="int16")
    if rate != SAMPLING_RATE:
        raise ValueError(f"{path}: expected {SAMPLING_RATE} Hz, found {rate} Hz")
    buf = io.BytesIO()
    sf.write(buf, data, rate, format="FLAC", subtype="PCM_16", compression_level=1.0)
    return buf.getvalue()


def _write(path: Path, payload: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(payload)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def build(data: Path, out: Path) -> tuple[int, int]:
    """Write the set; returns (clips, bytes)."""
    with (data / "labels.csv").open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["speaker"] in SPEAKERS]
    out.mkdir(parents=True, exist_ok=True)
    lines, total = ["file,speaker,emotion"], 0
    for r in sorted(rows, key=lambda r: r["file"]):
        name = Path(r["file"]).name
        payload = _flac_bytes(data / r["file"])
        _write(out / name, payload)
        total += len(payload)
        lines.append(f"{name},{r['speaker']},{r['emotion']}")
    _write(out / "calibration.csv", ("\n".join(lines) + "\n").encode())
    counts = {s: sum(r["speaker"] == s for r in rows) for s in SPEAKERS}
    readme = README.format(count=len(rows), male=counts["11"], female=counts["14"], size=total / 1e6)
    _write(out / "README.md", readme.encode())
    total += (out / "calibration.csv").stat().st_size + len(readme.encode())
    if total > BUDGET_BYTES:
        raise SystemExit(
            f"calibration set is {total / 1e6:.2f} MB, over the {BUDGET_BYTES / 1e6:.0f} MB budget"
        )
    return len(rows), total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="EmoDB folder with labels.csv and audio/")
    p.add_argument("--out", type=Path, default=Path("edgeser/assets/calibration"))
    args = p.parse_args(argv)
    clips, size = build(args.data, args.out)
    print(f"wrote {clips} clips, {size / 1e6:.2f} MB in all, to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
