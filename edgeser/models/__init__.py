"""Students: torch modules mapping float32 (B, T) 16 kHz waveforms to (B, 3) arousal, dominance, valence.

Checkpoints are safetensors files whose metadata holds the architecture and its config, so
:func:`load` needs nothing else. A published Wav2Small ``model.safetensors`` (no edgeser metadata)
is recognised by its key names and loaded strictly.

Frozen tensors that the architecture rebuilds exactly from its config (the STFT kernels and the mel
filter bank: 1 MB for a 512-point STFT) are left out of edgeser checkpoints and listed in the
``derived`` metadata entry; :func:`load` takes them from the freshly built model. Only tensors that are
not trained (frozen parameters, buffers other than batch-norm statistics) can be listed there.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..errors import InputError, OutputError
from ..fileio import replacing
from ..userfiles import load_safetensors, safetensors_header
from . import mobilenet, wav2small  # noqa: F401  (each registers its variants)
from .registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model", "save", "load", "count_parameters", "read_metadata"]

FORMAT = "edgeser.student/1"


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, frozen) parameter counts; registered buffers (the mel matrix) are not parameters."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return trainable, frozen


def _derivable(model: Any) -> set[str]:
    """State-dict keys that are never trained: frozen parameters and buffers other than batch-norm statistics."""
    frozen = {k for k, p in model.named_parameters() if not p.requires_grad}
    buffers = {k for k, _ in model.named_buffers()
               if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    return frozen | buffers


def _derived(model: Any) -> list[str]:
    """Derivable keys whose values equal those of a freshly built model of the same config."""
    import torch

    fresh = create_model(model.arch, **model.config()).state_dict()
    state = model.state_dict()
    return sorted(k for k in _derivable(model) if k in fresh and torch.equal(state[k].cpu(), fresh[k]))


def save(model: Any, path: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
    """Write a student as safetensors with its architecture and config in the metadata (atomically).

    Args:
        model: a registered student (has ``arch`` and ``config()``).
        path: destination ``.safetensors`` file.
        extra: JSON-serialisable facts kept in the metadata (training command, scores ...).
    """
    from safetensors.torch import save_file

    from .. import __version__

    path = Path(path)
    meta = {
        "format": FORMAT,
        "arch": model.arch,
        "config": json.dumps(model.config()),
        "edgeser_version": __version__,
        "extra": json.dumps(extra or {}),
    }
    derived = _derived(model)
    if derived:
        meta["derived"] = json.dumps(derived)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked") and k not in derived}
    try:
        with replacing(path, suffix=".safetensors") as tmp:
            save_file(state, str(tmp), metadata=meta)
    except OSError as exc:
        raise OutputError(f"cannot write checkpoint ({exc.strerror})", path=path) from None
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors metadata of a checkpoint (empty for files written by other tools).

    Raises:
        InputError: the file is missing or not a readable safetensors file.
    """
    return safetensors_header(path, what="model file")[0]


def _spec(meta: dict[str, str], shapes: dict[str, tuple[int, ...]], path: Path) -> tuple[str, dict[str, Any], set[str]]:
    """(architecture, config, derived keys) from edgeser metadata, or the published Wav2Small's from its shapes."""
    if meta.get("format") != FORMAT:
        w, stft = shapes.get("vgg7.l1.conv.weight"), shapes.get("vgg7.spectrogram_extractor.conv_real.weight")
        if not w or not stft:
            raise InputError("no edgeser metadata and not a Wav2Small layout (no 'vgg7.l1.conv.weight' or "
                             "'vgg7.spectrogram_extractor.conv_real.weight')", path=path)
        return "wav2small", {"channels": w[0], "n_fft": stft[-1], "hop_length": stft[-1] // 2}, set()
    try:
        arch, config, derived = meta["arch"], json.loads(meta["config"]), json.loads(meta.get("derived", "[]"))
    except (KeyError, json.JSONDecodeError) as exc:
        raise InputError(f"corrupt edgeser metadata ({exc})", path=path) from None
    if not isinstance(config, dict) or not isinstance(derived, list) or not all(isinstance(k, str) for k in derived):
        raise InputError("corrupt edgeser metadata (config must be an object, derived a list of names)", path=path)
    return arch, config, set(derived)


def _build(arch: str, config: dict[str, Any], path: Path) -> Any:
    try:
        return create_model(arch, **config)
    except InputError as exc:
        raise InputError(f"its metadata asks for a student that cannot be built: {exc.message}", path=path) from None


def _check_shapes(skeleton: Any, shapes: dict[str, tuple[int, ...]], derived: set[str], path: Path) -> None:
    """The file must hold every tensor the config builds (but the derived ones), in the same shapes."""
    trained = sorted(derived - _derivable(skeleton))
    if trained:
        raise InputError(f"corrupt edgeser metadata: 'derived' lists trained weights ({', '.join(trained[:4])})",
                         path=path)
    built = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()
             if not k.endswith("num_batches_tracked") and k not in derived}
    stored = {k: v for k, v in shapes.items() if not k.endswith("num_batches_tracked")}
    missing, unexpected = sorted(built.keys() - stored.keys()), sorted(stored.keys() - built.keys())
    if missing or unexpected:
        detail = "; ".join(filter(None, [
            f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}" if missing else "",
            f"unexpected {', '.join(unexpected[:4])}{' ...' if len(unexpected) > 4 else ''}" if unexpected else "",
        ]))
        raise InputError(f"checkpoint does not match {skeleton.arch}: {detail}", path=path)
    differ = [k for k in built if built[k] != stored[k]]
    if differ:
        needs, holds = (sum(math.prod(s[k]) for k in built) for s in (built, stored))
        k = differ[0]
        raise InputError(f"its config needs {needs:,} values, the file holds {holds:,} ({k}: {stored[k]} in the "
                         f"file, {built[k]} from the config)", path=path)


def load(path: str | Path) -> Any:
    """Load a student checkpoint (edgeser or published Wav2Small layout), strictly, in eval mode.

    The config in the metadata is checked against the tensors the file holds before anything is allocated:
    sizes within :data:`~edgeser.models.registry.MAX_SIZES`, then a model built on torch's meta device (no
    memory) must have exactly the file's tensor names and shapes.

    Raises:
        InputError: the file is missing or corrupt, or its config, keys or shapes do not match the architecture.
    """
    import torch

    path = Path(path)
    meta, shapes = safetensors_header(path, what="model file")
    arch, config, derived = _spec(meta, shapes, path)
    with torch.device("meta"):
        skeleton = _build(arch, config, path)
    _check_shapes(skeleton, shapes, derived, path)
    state = load_safetensors(path, what="model file")
    model = _build(arch, config, path)
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise InputError(f"checkpoint shapes do not match {model.arch}: {str(exc).splitlines()[-1].strip()}",
                         path=path) from None
    return model.eval()
