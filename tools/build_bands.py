"""Rebuild the word-band table ``edgeser/runtime/bands.json`` from the default student's outputs on EmoDB.

Every command and every bundle shows a word beside each value (arousal: calm / neutral / excited;
dominance: submissive / neutral / dominant; valence: negative / neutral / positive). The two thresholds of
each dimension come from what the model outputs on EmoDB's acted categories:

1. Run the student (exported to ONNX, through the device runtime, as ``edgeser predict`` does) on every
   clip of the chosen speakers; the category is the letter in EmoDB's file name (W anger, L boredom,
   E disgust, A fear, F happiness, T sadness, N neutral).
2. Take each category's median output per dimension.
3. Where the NRC VAD Lexicon (``CATEGORY_ADV``) rates the word "neutral" in the middle third of the scale
   (dominance 0.36, valence 0.47), neutral speech anchors the middle band: the other categories are low or
   high by whether their word is rated below or above "neutral", and the thresholds are the midpoints
   between the neutral category's median and the low and high groups' levels (a group's level is the
   median of its categories' medians).
4. Where the lexicon rates "neutral" at one end (arousal 0.18: neutral speech is calm), the categories are
   low or high by their word's rating (below or above 0.5), and the thresholds cut the span between the
   two groups' levels into thirds.

Usage (from the repository root; EmoDB as ``labels.csv`` + ``audio/``, or the built-in calibration list)::

    python tools/build_bands.py --data ../shared/data/emodb --speakers 11,14
    python tools/build_bands.py --data edgeser/assets/calibration/calibration.csv   # the same clips
    python tools/build_bands.py --data ../shared/data/emodb --speakers all --out /tmp/all.json  # a check
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgeser.audio import list_audio
from edgeser.defaults import CATEGORY_ADV, default_student_path
from edgeser.fileio import replacing
from edgeser.runners import open_any
from edgeser.runtime.bands import BANDS_FILE, WORDS, Bands
from edgeser.runtime.integrity import sha256_file
from edgeser.runtime.predict import predict_file
from edgeser.runtime.spec import DIMENSIONS

EMODB_LETTERS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness",
                 "N": "neutral"}
"""EmoDB's emotion letter (6th character of the file name) and its category."""
GROUPS = ("low", "middle", "high")
NEUTRAL = "neutral"
HELD_OUT = "11,14"
"""The speakers neither the reference teacher nor the default student trained on (the calibration set)."""


def category(path: Path) -> str:
    """EmoDB's category of a clip, from its file name (e.g. ``03a01Wa.flac`` -> anger)."""
    letter = path.name[5:6]
    if letter not in EMODB_LETTERS:
        raise SystemExit(f"error: {path}: not an EmoDB file name (no emotion letter at position 6)")
    return EMODB_LETTERS[letter]


def clips(data: Path, speakers: str) -> list[tuple[Path, str]]:
    """(file, speaker) of the chosen speakers; ``data`` is a folder with labels.csv or a list csv."""
    source = data / "labels.csv" if data.is_dir() else data
    items = [(i.path, i.speaker or i.path.name[:2]) for i in list_audio(source)]
    if speakers != "all":
        wanted = set(speakers.split(","))
        items = [(p, s) for p, s in items if s in wanted]
    if not items:
        raise SystemExit(f"error: {source}: no clips of speakers {speakers}")
    return sorted(items)


def thresholds(medians: dict[str, float], dim: int) -> tuple[list[float], dict[str, list[str]], dict[str, float]]:
    """Two thresholds from per-category medians, the groups of categories and each group's level."""
    pole = CATEGORY_ADV[NEUTRAL][dim]
    centred = 1 / 3 <= pole <= 2 / 3  # the lexicon rates the word "neutral" mid-scale on this dimension
    groups: dict[str, list[str]] = {g: [] for g in GROUPS}
    for cat in sorted(medians):
        value = CATEGORY_ADV[cat][dim]
        if centred:
            groups["middle" if cat == NEUTRAL else "low" if value < pole else "high"].append(cat)
        else:
            groups["low" if value < 0.5 else "high"].append(cat)
    levels = {g: float(np.median([medians[c] for c in cats])) for g, cats in groups.items() if cats}
    if "low" not in levels or "high" not in levels:
        raise SystemExit(f"error: {DIMENSIONS[dim]}: the data needs categories at both ends of the lexicon")
    lo, hi = levels["low"], levels["high"]
    if "middle" in levels:
        cuts = [(lo + levels["middle"]) / 2, (levels["middle"] + hi) / 2]
    else:
        cuts = [lo + (hi - lo) / 3, lo + 2 * (hi - lo) / 3]
    if not cuts[0] < cuts[1]:
        raise SystemExit(f"error: {DIMENSIONS[dim]}: the model does not order the groups low < high ({levels})")
    return [round(c, 3) for c in cuts], groups, levels


def build(data: Path, speakers: str, student: Path) -> tuple[dict[str, Any], dict[str, list[np.ndarray]]]:
    """The band table (see the module docstring), and each category's outputs (one row per clip)."""
    items = clips(data, speakers)
    runner, _ = open_any(student)  # exported to ONNX once and cached, as `edgeser predict --model` does
    outputs: dict[str, list[np.ndarray]] = {}
    for path, _ in items:
        outputs.setdefault(category(path), []).append(predict_file(runner, path).mean)
    dims: dict[str, object] = {}
    for i, dim in enumerate(DIMENSIONS):
        medians = {c: float(np.median([o[i] for o in rows])) for c, rows in sorted(outputs.items())}
        cuts, groups, levels = thresholds(medians, i)
        dims[dim] = {"words": list(WORDS[dim]), "thresholds": cuts, "groups": groups,
                     "group_levels": {g: round(v, 3) for g, v in levels.items()},
                     "category_medians": {c: round(v, 3) for c, v in medians.items()}}
    chosen = sorted({s for _, s in items})
    return {
        "format": 1,
        "model": {"file": student.name, "sha256": sha256_file(student)},
        "data_name": "EmoDB",
        "data": f"EmoDB (Berlin Database of Emotional Speech, acted German), {len(items)} clips",
        "speakers": chosen,
        "clips_per_category": {c: len(rows) for c, rows in sorted(outputs.items())},
        "measured": datetime.date.today().isoformat(),
        "method": "per-category medians; where the NRC VAD Lexicon rates 'neutral' mid-scale (dominance, valence) "
                  "the thresholds are the midpoints between the neutral category's median and the levels of the "
                  "categories rated below and above it; elsewhere (arousal) they cut the span between the low and "
                  "high categories' levels into thirds; a level is the median of category medians; "
                  "tools/build_bands.py",
        "dimensions": dims,
    }, outputs


def shares(bands: Bands, outputs: dict[str, list[np.ndarray]]) -> str:
    """A markdown table: for each category, the share of its clips that each dimension's bands put low/mid/high."""
    lines = ["| category | clips | " + " | ".join(f"{d} ({'/'.join(WORDS[d])})" for d in DIMENSIONS) + " |",
             "|---|---:|" + "---|" * len(DIMENSIONS)]
    for cat, rows in sorted(outputs.items()):
        cells = []
        for i, dim in enumerate(DIMENSIONS):
            words = [bands.word(dim, float(r[i])) for r in rows]
            cells.append(" / ".join(f"{100 * words.count(w) / len(words):.0f}%" for w in WORDS[dim]))
        lines.append(f"| {cat} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data/emodb"),
                   help="EmoDB folder (labels.csv + audio/) or a list csv with a file column")
    p.add_argument("--speakers", default=HELD_OUT, help=f"comma-separated speaker ids, or 'all' (default {HELD_OUT})")
    p.add_argument("--student", type=Path, default=None, help="checkpoint (default: the embedded default student)")
    p.add_argument("--out", type=Path, default=BANDS_FILE, help=f"output JSON (default {BANDS_FILE})")
    args = p.parse_args(argv)
    table, outputs = build(args.data, args.speakers, args.student or default_student_path())
    bands = Bands.from_dict(table)  # the runtime must be able to read what is written
    with replacing(args.out) as tmp:
        tmp.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    for dim, entry in table["dimensions"].items():
        print(f"{dim:<10} thresholds {entry['thresholds']}  medians {entry['category_medians']}")
    print(shares(bands, outputs))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
