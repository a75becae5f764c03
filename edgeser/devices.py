"""Where heavy work runs: ``--device auto|cpu|cuda|cuda:N`` and ``--precision fp32|bf16|fp16``, checked once.

Every command that runs torch (a transformers teacher, distillation) or onnxruntime with a GPU provider
resolves its device here, so the same words mean the same thing everywhere and a CUDA request on a
machine without CUDA is one clear line (exit 2), not a traceback from deep inside a library.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from .errors import InputError

__all__ = ["DEVICE_CHOICES", "PRECISIONS", "Placement", "check_words", "resolve", "autocast", "onnx_providers"]

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
PRECISIONS = ("fp32", "bf16", "fp16")
_DEVICE = re.compile(r"auto|cpu|cuda(?::(\d+))?")


@dataclass(frozen=True)
class Placement:
    """A resolved device and numeric precision."""

    device: str
    """``cpu`` or ``cuda:N``."""
    precision: str = "fp32"
    """``fp32``, ``bf16`` or ``fp16`` (the last two only on CUDA: autocast)."""

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def index(self) -> int:
        """The CUDA device index (0 on the CPU)."""
        return int(self.device.split(":")[1]) if self.is_cuda else 0

    def torch_device(self) -> Any:
        import torch

        return torch.device(self.device)


def _cuda_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_words(device: str, precision: str = "fp32", *, option: str = "--device") -> re.Match[str]:
    """Check that a device and a precision are words edgeser accepts, without looking for CUDA (for a request
    that another machine, such as a Ray cluster's node, will resolve).

    Raises:
        InputError: an unknown device or precision.
    """
    match = _DEVICE.fullmatch(str(device).strip().lower())
    if match is None:
        raise InputError(f"{option} must be {DEVICE_CHOICES}, got {device!r}")
    if precision not in PRECISIONS:
        raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return match


def resolve(device: str = "auto", precision: str = "fp32", *, option: str = "--device") -> Placement:
    """Resolve a device and precision request.

    ``auto`` picks ``cuda:0`` when torch sees a CUDA device, else ``cpu``. ``bf16`` and ``fp16`` need CUDA
    (on the CPU they would be slower than fp32 and change the numbers for nothing).

    Raises:
        InputError: an unknown device or precision, a CUDA device this machine does not have, or a
            reduced precision on the CPU.
    """
    match = check_words(device, precision, option=option)
    text = match.group(0)
    count = _cuda_count() if text != "cpu" else 0
    if text == "auto":
        text = "cuda:0" if count else "cpu"
    elif text.startswith("cuda"):
        index = int(match.group(1) or 0)
        if count == 0:
            raise InputError(f"{option} {device}: no CUDA device is available here (torch sees none); "
                             "use --device cpu or auto")
        if index >= count:
            raise InputError(f"{option} {device}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
        text = f"cuda:{index}"
    if precision != "fp32" and text == "cpu":
        raise InputError(f"--precision {precision} needs a CUDA device; on the CPU use fp32")
    return Placement(text, precision)


def autocast(placement: Placement) -> AbstractContextManager[Any]:
    """torch autocast for a reduced precision on CUDA; a no-op for fp32."""
    if placement.precision == "fp32" or not placement.is_cuda:
        return nullcontext()
    import torch

    dtype = torch.bfloat16 if placement.precision == "bf16" else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def onnx_providers(placement: Placement) -> list[Any]:
    """onnxruntime execution providers for a placement (CUDA first, with the CPU as the fallback for ops it
    lacks).

    Raises:
        InputError: CUDA was asked for and this onnxruntime has no CUDA provider (pip install onnxruntime-gpu).
    """
    if not placement.is_cuda:
        return ["CPUExecutionProvider"]
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise InputError(f"--device {placement.device}: this onnxruntime has no CUDA execution provider "
                         "(pip install onnxruntime-gpu instead of onnxruntime)")
    return [("CUDAExecutionProvider", {"device_id": placement.index}), "CPUExecutionProvider"]
