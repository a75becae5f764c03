"""Which parts of the student survive int8? Quantise with different parts kept in float and measure drift.

Run by hand; prints a table measured in one run (docs/quantisation.md quotes it for the current default student):

    python research/quant_ablation.py                       # embedded default student, teacher, calibration set
    python research/quant_ablation.py --student S --teacher T --audio LIST.csv
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

VARIANTS: list[tuple[str, dict[str, object]]] = [
    ("rpi default: conv body int8", {}),
    ("head int8 too", {"quantise.float_ops": ["frontend", "softmax"]}),
    ("softmax int8 too", {"quantise.float_ops": ["frontend", "head"]}),
    ("front-end int8 too", {"quantise.float_ops": ["softmax", "head"]}),
    ("everything int8", {"quantise.float_ops": []}),
    ("int8 activations", {"quantise.activations": "int8"}),
    ("per-tensor weights", {"quantise.per_channel": False}),
    ("reduce_range forced on", {"quantise.reduce_range": "true"}),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--student")
    p.add_argument("--teacher")
    p.add_argument("--audio")
    args = p.parse_args()

    from edgeser import audio as audio_io
    from edgeser import models
    from edgeser.build import collect_windows, label_windows, split_windows
    from edgeser.defaults import calibration_list_path, default_student_path
    from edgeser.drift import evaluate
    from edgeser.export.onnx import export, quantise
    from edgeser.recipe import load_recipe
    from edgeser.runtime.engine import InputSpec
    from edgeser.teachers import load_teacher

    rec = load_recipe("rpi")
    source = args.audio or str(calibration_list_path())
    wins = collect_windows(audio_io.list_audio(source), rec.window_samples())
    cal_idx, eval_idx = split_windows(wins, rec, source)
    teacher = load_teacher(args.teacher)
    labels = label_windows(teacher, wins.data[eval_idx])
    model = models.load(args.student or default_student_path())
    print(f"{len(cal_idx)} calibration / {len(eval_idx)} evaluation windows ({wins.split_by}-disjoint), "
          f"teacher {teacher.name}\n")
    print("| variant | CCC(int8, float) A / D / V | CCC(int8, teacher) A / D / V | "
          "CCC(float, teacher) A / D / V | gate |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        float_art = export(model, tmp_path / "f.onnx", recipe=rec, spec=InputSpec(window_samples=rec.window_samples()))
        for i, (name, overrides) in enumerate(VARIANTS):
            r = load_recipe("rpi", **overrides)
            out = tmp_path / str(i)
            out.mkdir()
            arts = quantise(float_art, out, wins.data[cal_idx], recipe=r)
            drift = evaluate(float_art, arts, wins.data[eval_idx], labels, budget=r.drift)
            qf = " / ".join(f"{row.ccc_quant_float:.3f}" for row in drift.rows)
            qt = " / ".join(f"{row.ccc_quant_teacher:.3f}" for row in drift.rows)
            ft = " / ".join(f"{row.ccc_float_teacher:.3f}" for row in drift.rows)
            print(f"| {name} | {qf} | {qt} | {ft} | {'pass' if drift.passed else 'FAIL'} |")


if __name__ == "__main__":
    main()
