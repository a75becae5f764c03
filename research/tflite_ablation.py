"""What int8 TFLite needs to keep a Wav2Small's output: the measurements behind the android/coral recipes.

1. coral (full int8, log-mel on the CPU): the student converted with divide-once pooling (edgeser), as
   trained, or with a last-axis SOFTMAX op, each calibrated with ai-edge-quantizer's default range rule
   (moving average of per-window extremes) and with edgeser's (min/max over all windows);
2. android static int8: which parts stay float (none, softmax, frontend, frontend + softmax, + head).

CCC(int8, float) per dimension on held-out speakers; a variant that fails is shown with its error.

    python research/tflite_ablation.py --student S.safetensors --audio emodb/labels.csv --held-out 03,08
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

CALIBRATION_WINDOWS = 64
WINDOW_SAMPLES = 32_000


def _split(audio: str, held_out: set[str]) -> tuple[np.ndarray, np.ndarray]:
    from edgeser.audio import fit_length, list_audio, load

    items = list_audio(audio)
    x = np.stack([fit_length(load(it.path), WINDOW_SAMPLES) for it in items]).astype(np.float32)
    test = np.array([it.speaker in held_out for it in items])
    rng = np.random.default_rng(0)
    cal = x[~test][rng.choice(int((~test).sum()), CALIBRATION_WINDOWS, replace=False)]
    return cal, x[test]


def _softmax_op_module(model: Any) -> Any:
    import torch
    from torch import nn

    v = model.vgg7

    class SoftmaxOp(nn.Module):  # same maths, softmax on the last axis: one SOFTMAX op in TFLite
        def forward(self, mel: torch.Tensor) -> torch.Tensor:
            x = v.maxpool_A(v.l3(v.l2(v.l1(mel))))
            x = v.l7(v.l6(v.l5(v.l4(x))))
            w = v.sof(x).transpose(2, 3).softmax(-1).transpose(2, 3)
            x = (v.lin(x) * w).sum(2)
            return model.adv(torch.cat([x, torch.bmm(x, x.transpose(1, 2))], 2).flatten(1))

    return SoftmaxOp().eval()


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _ccc(q: Any, fl: np.ndarray, ev: np.ndarray) -> str:
    from edgeser.export.tflite_files import run
    from edgeser.metrics import ccc

    out = run(q.path, ev)
    return " / ".join(f"{c:.3f}" for c in ccc(out, fl)) if np.isfinite(out).all() else "NaN/Inf"


def coral(model: Any, cal: np.ndarray, ev: np.ndarray, tmp: Path) -> None:
    from ai_edge_quantizer.utils import qsv_utils

    from edgeser.export import tflite, tflite_quantise
    from edgeser.export.tflite_files import run
    from edgeser.recipe import load_recipe
    from edgeser.runtime.engine import InputSpec

    print(_row(["coral body written", "calibration ranges", "int8 ops", "CCC(int8, float) A / D / V"]))
    print("|---|---|---|---|")
    recipe = load_recipe("coral", **{"quantise.require_int8": False})
    default_export, edgeser_rule = tflite._exportable, tflite_quantise._extremes
    forms = {"divide-once pooling (edgeser)": default_export,
             "as trained": lambda m, f, pooling=None: default_export(m, f, "as-trained"),
             "last-axis SOFTMAX op": lambda m, f, pooling=None: _softmax_op_module(m)}
    rules = {"moving average (ai-edge-quantizer default)": qsv_utils.moving_average_update,
             "min/max over all windows (edgeser)": edgeser_rule}
    try:
        for i, (form, exportable) in enumerate(forms.items()):
            tflite._exportable = exportable
            folder = tmp / f"coral{i}"
            folder.mkdir()
            art = tflite.export(model, folder / "model.float.tflite", recipe=recipe,
                                spec=InputSpec(window_samples=WINDOW_SAMPLES))
            fl = run(art.path, ev)
            for rule_name, rule in rules.items():
                tflite_quantise._extremes = rule
                (q,) = tflite.quantise(art, folder, cal, recipe=recipe)
                print(_row([form, rule_name, f"{q.details['int8_ops']}/{q.details['ops']}", _ccc(q, fl, ev)]),
                      flush=True)
    finally:
        tflite._exportable, tflite_quantise._extremes = default_export, edgeser_rule


def android(model: Any, cal: np.ndarray, ev: np.ndarray, tmp: Path) -> None:
    from edgeser.errors import ExportCheckError
    from edgeser.export import tflite
    from edgeser.export.tflite_files import run
    from edgeser.recipe import load_recipe
    from edgeser.runtime.engine import InputSpec

    print(_row(["android int8: kept float", "int8 ops", "CCC(int8, float) A / D / V"]))
    print("|---|---|---|")
    folder = tmp / "android"
    folder.mkdir()
    art = tflite.export(model, folder / "model.float.tflite", recipe=load_recipe("android"),
                        spec=InputSpec(window_samples=WINDOW_SAMPLES))
    fl = run(art.path, ev)
    for keep in ([], ["softmax"], ["frontend"], ["frontend", "softmax"], ["frontend", "softmax", "head"]):
        recipe = load_recipe("android", **{"quantise.float_ops": keep, "quantise.variants": ["int8"]})
        name = ", ".join(keep) or "nothing"
        try:
            (q,) = tflite.quantise(art, folder, cal, recipe=recipe)
            print(_row([name, f"{q.details['int8_ops']}/{q.details['ops']}", _ccc(q, fl, ev)]), flush=True)
        except ExportCheckError as exc:
            print(_row([name, "-", f"fails: {exc.message.split(': ', 1)[-1][:120]}"]), flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--student", type=Path, required=True)
    p.add_argument("--audio", required=True, help="csv with file and speaker columns")
    p.add_argument("--held-out", default="03,08", help="comma-separated speakers measured (not calibrated on)")
    args = p.parse_args()
    import torch

    from edgeser import models

    torch.set_num_threads(1)
    model = models.load(args.student)
    cal, ev = _split(args.audio, set(args.held_out.split(",")))
    print(f"{len(cal)} calibration windows, {len(ev)} held-out windows\n")
    with tempfile.TemporaryDirectory(prefix="edgeser-ablation-") as d:
        coral(model, cal, ev, Path(d))
        print()
        android(model, cal, ev, Path(d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
