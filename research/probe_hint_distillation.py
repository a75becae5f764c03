"""Probe: does an auxiliary "hint" loss on the embedded teacher's internals help a student follow its valence?

The embedded reference teacher is eGeMAPS-style functionals -> logistic regression -> posterior-weighted
table (docs/model-cards/reference-teacher.md). This probe reads two of its intermediate tensors as well as
its A/D/V output: the 7 category logits (centred per window) and the 118 standardised functionals. It
trains the earlier default student F3's layout (13 channels, n_fft 512, hop 256; the layout, loss,
learning rate, batch, weight averaging and augmentation are read from the shipped default's metadata,
less its softmax head) with the distill loss on A/D/V (ccc+mse) plus
``--weight`` times the MSE between a training-only linear map of the student's feature and those hints
(standardised per dimension on 512 training windows), with the online teacher, augmentation, schedule and
weight averaging of `edgeser distill`. ``--weight 0`` is the same run without hints. It validates on the
held-out speakers every epoch and saves the averaged student (the hint map is not part of it).

A probe, not a product feature: it reaches into ``edgeser.distill`` for its private loss, schedule and
averaging so that the only difference from `edgeser distill` is the hint term. The measured result is in
research/default-student-runs.md (it did not help, so distill has no such option).

    python research/probe_hint_distillation.py --labels labels_huge.csv --weight 1 --epochs 16 --out hint.safetensors
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HINTS = {"logits": "/head/Gemm_output_0", "functionals": "/Clip_output_0"}
"""Tensor names of the hints in edgeser/assets/reference_teacher.onnx."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=Path, required=True, help="labels CSV written by the default teacher")
    ap.add_argument("--out", type=Path, required=True, help="student checkpoint (.safetensors)")
    ap.add_argument("--weight", type=float, default=1.0, help="weight of the hint loss (0: no hints)")
    ap.add_argument("--hints", nargs="+", choices=sorted(HINTS), default=["logits", "functionals"])
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--windows-per-epoch", type=int, default=1500)
    ap.add_argument("--val-speakers", nargs="+", default=["09", "12"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import onnx
    import onnxruntime as ort
    import torch
    from common import F3_LESS, default_recipe
    from torch.optim.swa_utils import AveragedModel

    from edgeser import models
    from edgeser.augment import Augmenter
    from edgeser.defaults import default_teacher_path
    from edgeser.distill import load_windows
    from edgeser.distill.ema import _ema_step
    from edgeser.distill.loop import _predict
    from edgeser.distill.loss import _loss
    from edgeser.distill.run import _schedule
    from edgeser.label import read_labels
    from edgeser.metrics import ccc

    torch.set_num_threads(1)
    graph = onnx.load(str(default_teacher_path()))
    for name in args.hints:
        graph.graph.output.append(onnx.helper.make_tensor_value_info(HINTS[name], onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(graph.SerializeToString(), opts, providers=["CPUExecutionProvider"])

    def teacher(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        adv, *hints = session.run(None, {session.get_inputs()[0].name: x})
        hints = [
            h - h.mean(1, keepdims=True) if name == "logits" else h  # softmax ignores a shared offset
            for name, h in zip(args.hints, hints, strict=True)
        ]
        return adv, np.concatenate([h.reshape(len(x), -1) for h in hints], 1)

    table = read_labels(args.labels)
    x = load_windows(table)  # the longest window, as distill does
    val = np.isin(np.array(table.speakers), args.val_speakers)
    x_train, x_val, y_val = x[~val], x[val], table.targets[val]
    rng = np.random.default_rng(args.seed)
    _, sample = teacher(x_train[rng.choice(len(x_train), min(512, len(x_train)), replace=False)])
    mean, std = sample.mean(0), sample.std(0) + 1e-3

    # the settings the shipped default was distilled with, less its softmax head and speech statistics: F3's
    recipe = default_recipe(without=F3_LESS)
    torch.manual_seed(args.seed)
    model = models.create_model(recipe.student, **recipe.student_config)
    hint_map = torch.nn.Linear(model.cfg.hidden, sample.shape[1])
    ema = AveragedModel(model, avg_fn=_ema_step(recipe.ema), use_buffers=True)
    params = [p for p in model.parameters() if p.requires_grad] + list(hint_map.parameters())
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.01)  # 0.01 as in the card's runs (distill: 1e-4)
    batch = recipe.batch_size
    steps = args.windows_per_epoch // batch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(args.epochs * steps))
    aug = Augmenter(recipe.augment, seed=args.seed)
    weights, history = torch.ones(3), []
    for epoch in range(1, args.epochs + 1):
        start = time.time()
        model.train()
        order = rng.permutation(len(x_train))[: args.windows_per_epoch]
        for s in range(0, len(order), batch):
            idx = order[s : s + batch]
            xb, _ = aug.batch([x_train[i] for i in idx], np.zeros((len(idx), 3), np.float32), x.shape[1])
            yb, hb = teacher(xb)
            feature = model.vgg7(torch.from_numpy(xb))
            loss = _loss(recipe.loss, model.head(feature), torch.from_numpy(yb), weights)
            if args.weight > 0:
                target = torch.from_numpy((hb - mean) / std)
                loss = loss + args.weight * ((hint_map(feature) - target) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            ema.update_parameters(model)
        scores = [round(float(v), 3) for v in ccc(_predict(ema.module, x_val), y_val)]
        history.append({"epoch": epoch, "val_ccc": scores, "seconds": round(time.time() - start)})
        print(json.dumps(history[-1]), flush=True)
    models.save(
        ema.module,
        args.out,
        extra={"probe": "hint distillation", "weight": args.weight, "hints": args.hints, "history": history},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
