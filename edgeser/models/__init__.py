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
from pathlib import Path
from typing import Any

from ..errors import InputError, OutputError
from ..fileio import replacing
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
    """The safetensors metadata of a checkpoint (empty for files written by other tools)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError("model file not found", path=path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises several types for a corrupt header
        raise InputError(f"not a readable safetensors file ({type(exc).__name__})", path=path) from None


def _published_wav2small(state: dict[str, Any], path: Path) -> Any:
    w = state.get("vgg7.l1.conv.weight")
    if w is None:
        raise InputError("no edgeser metadata and not a Wav2Small layout (no 'vgg7.l1.conv.weight')", path=path)
    n_fft = int(state["vgg7.spectrogram_extractor.conv_real.weight"].shape[-1])
    return create_model("wav2small", channels=int(w.shape[0]), n_fft=n_fft, hop_length=n_fft // 2)


def load(path: str | Path) -> Any:
    """Load a student checkpoint (edgeser or published Wav2Small layout), strictly, in eval mode.

    Raises:
        InputError: the file is missing or corrupt, or its keys or shapes do not match the architecture.
    """
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_metadata(path)
    state = load_file(str(path))
    derived: set[str] = set()
    if meta.get("format") == FORMAT:
        try:
            model = create_model(meta["arch"], **json.loads(meta["config"]))
            derived = set(json.loads(meta.get("derived", "[]")))
        except (KeyError, json.JSONDecodeError, TypeError) as exc:
            raise InputError(f"corrupt edgeser metadata ({exc})", path=path) from None
        trained = sorted(derived - _derivable(model))
        if trained:
            raise InputError(f"corrupt edgeser metadata: 'derived' lists trained weights ({', '.join(trained[:4])})",
                             path=path)
    else:
        model = _published_wav2small(state, path)
    expected = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")} - derived
    missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected - {
        k for k in state if k.endswith("num_batches_tracked")})
    if missing or unexpected:
        detail = "; ".join(filter(None, [
            f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}" if missing else "",
            f"unexpected {', '.join(unexpected[:4])}{' ...' if len(unexpected) > 4 else ''}" if unexpected else "",
        ]))
        raise InputError(f"checkpoint does not match {model.arch}: {detail}", path=path)
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise InputError(f"checkpoint shapes do not match {model.arch}: {str(exc).splitlines()[-1].strip()}",
                         path=path) from None
    return model.eval()
