"""Distillation: train a registered student on a teacher's labels only.

The labels CSV comes from :func:`edgeser.label.label`. Windows of the labelled audio are loaded once
(each file's sha256 is checked against the one recorded at labelling time), some speakers are held out
for validation, and the student is trained on augmented windows (:mod:`edgeser.augment`) to match the
teacher's arousal, dominance and valence with a CCC-based loss, MSE, or both.

After every epoch the student is scored against the teacher on the held-out speakers (CCC per
dimension, clean audio); the best epoch (highest mean CCC) is saved at ``out``, the last one at
``<out stem>.last.safetensors`` with its optimiser state in ``<out stem>.state.pt``, so a run can
resume where it stopped.

Options aimed at a student that follows the teacher more closely on unseen speakers (their use for the
default student is measured in its model card): ``ema`` validates and saves an exponential moving average of the weights
instead of the last step's weights, and ``init`` starts from an earlier student checkpoint (fine-tuning
it on new labels). ``loss_weights`` weighs arousal, dominance and valence in the loss.

With ``teacher`` (the teacher that wrote the labels, checked by its identity) every augmented training
window is labelled again by the teacher as the student sees it: a noisy, mixed or sped-up window gets the
teacher's output for that very window instead of the clean window's label ("consistent" function
matching, Beyer et al., CVPR 2022). It suits fast teachers such as the embedded reference teacher;
validation still uses the labels file.

The student trains on ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``) in ``precision`` (``fp32``, or
``bf16`` / ``fp16`` autocast on CUDA). Started by ``torchrun``, the processes of a run train together with
PyTorch DDP, each on its shard of the windows (:mod:`.ddp`); :func:`distill_processes` starts N of them on
this machine.

The parts: :mod:`.config` (the settings), :mod:`.data` (speaker split, windows), :mod:`.loss`, :mod:`.ema`,
:mod:`.run` (the state of one run), :mod:`.checkpoint` (checkpoints, training state, resume),
:mod:`.loop` (the epochs), :mod:`.ddp` (ranks, shards, agreement) and :mod:`.launch` (``--nproc``).
"""

from __future__ import annotations

from .checkpoint import checkpoint_paths
from .config import LOSSES, DistillConfig, config_of
from .data import choose_val_speakers, load_windows
from .launch import distill_processes
from .loop import DistillResult, distill
from .loss import ccc_loss

__all__ = [
    "DistillConfig",
    "DistillResult",
    "LOSSES",
    "distill",
    "distill_processes",
    "ccc_loss",
    "checkpoint_paths",
    "choose_val_speakers",
    "config_of",
    "load_windows",
]
