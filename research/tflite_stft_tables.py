"""Why the android .tflite stores its STFT kernel: file size and speed of three ways to write the front-end.

The default student's 512-point STFT is a (514, 1, 512) convolution kernel, 1.05 MB in float32. The
ONNX export computes it in the graph and onnxruntime folds it at load; the TFLite converter folds any
purely constant subgraph at conversion, so the .tflite stores it. This script converts the front-end
alone (waveform -> normalisation -> STFT power -> mel -> dB, batch 1, 2-s window) three ways with
litert-torch and times each file in LiteRT (one thread, median of ``--repeats`` after 5 warm-ups):

- ``stored``: the kernel as a constant (what the android export does);
- ``generated``: the kernel computed from ``n = cumsum(ones)``, as the ONNX export does (the converter
  folds the ``ones`` and stores part of it again);
- ``factored``: cos/sin tables of ``k * 16 n1`` and ``k * n2`` (257 x 32 and 257 x 16 each) combined by
  the angle-sum identities, tied to the input by a factor that is exactly 1, so nothing is folded; the
  conv then has a filter computed at run time.

Usage::

    python research/tflite_stft_tables.py [--repeats 50]

Needs ``pip install -e '.[tflite]'``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_FFT, HOP, SR, N_MELS, WINDOW = 512, 256, 16_000, 26, 32_000


def _modules():
    import torch

    from edgeser.models.frontend import GeneratedFrontend, prenorm
    from edgeser.runtime.frontend import dft_kernels, mel_filterbank

    def to_db(power: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:  # power (B, bins, frames)
        return 10 * torch.log10(torch.clamp(torch.matmul(power.transpose(1, 2), mel), min=1e-10))

    def f32(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(a, dtype=np.float32))

    class Stored(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            real, imag = dft_kernels(N_FFT)
            self.register_buffer("kernel", f32(np.concatenate([real, imag]))[:, None])
            self.register_buffer("mel", f32(mel_filterbank(SR, N_FFT, N_MELS)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.nn.functional.conv1d(prenorm(x)[:, None], self.kernel, stride=HOP)
            bins = N_FFT // 2 + 1
            return to_db(y[:, :bins] ** 2 + y[:, bins:] ** 2, self.mel)

    class Generated(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.front = GeneratedFrontend(N_FFT, HOP, SR, N_MELS)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mel_power = self.front(prenorm(x))  # (B, mels, frames)
            return 10 * torch.log10(torch.clamp(mel_power.transpose(1, 2), min=1e-10))

    class Factored(torch.nn.Module):
        def __init__(self, q: int = 16) -> None:
            super().__init__()
            k = np.arange(N_FFT // 2 + 1, dtype=np.float64)[:, None]
            step = 2 * np.pi / N_FFT
            coarse, fine = (k * np.arange(0, N_FFT, q)) % N_FFT, (k * np.arange(q)) % N_FFT
            for name, a in (("c1", np.cos(step * coarse)), ("s1", np.sin(step * coarse)),
                            ("c2", np.cos(step * fine)), ("s2", np.sin(step * fine)),
                            ("window", 0.5 - 0.5 * np.cos(step * np.arange(N_FFT))),
                            ("mel", mel_filterbank(SR, N_FFT, N_MELS))):
                self.register_buffer(name, f32(a))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = prenorm(x)
            v = x[:1, :1] * x[:1, :1] + 1.0
            one = v / v  # exactly 1, but not a constant: the converter cannot fold the tables below
            c1, s1 = self.c1 * one, self.s1 * one
            cos = (c1[:, :, None] * self.c2[:, None, :] - s1[:, :, None] * self.s2[:, None, :]).flatten(1)
            sin = (s1[:, :, None] * self.c2[:, None, :] + c1[:, :, None] * self.s2[:, None, :]).flatten(1)
            y = torch.nn.functional.conv1d(x[:, None], (torch.cat([cos, sin]) * self.window)[:, None], stride=HOP)
            bins = N_FFT // 2 + 1
            return to_db(y[:, :bins] ** 2 + y[:, bins:] ** 2, self.mel)

    return {"stored": Stored(), "generated": Generated(), "factored": Factored()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args(argv)

    import torch
    from ai_edge_litert.interpreter import Interpreter

    from edgeser.export.tflite import _convert

    x = (np.random.default_rng(0).standard_normal((1, WINDOW)) * 0.1).astype(np.float32)
    modules = _modules()
    with torch.no_grad():
        ref = modules["stored"](torch.from_numpy(x)).numpy()
    print(f"front-end alone, {N_FFT}-point STFT, hop {HOP}, {N_MELS} mel bands, one {WINDOW / SR:.0f}-s window, "
          f"LiteRT, 1 thread, median of {args.repeats}\n")
    print("| front-end | .tflite bytes | ms per window | max abs diff vs stored (dB) |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, module in modules.items():
            path = Path(tmp) / f"{name}.tflite"
            _convert(module.eval(), x, path)
            it = Interpreter(model_path=str(path), num_threads=1)
            it.allocate_tensors()
            it.set_tensor(it.get_input_details()[0]["index"], x)
            times = []
            for i in range(args.repeats + 5):
                t = time.perf_counter()
                it.invoke()
                if i >= 5:
                    times.append((time.perf_counter() - t) * 1e3)
            out = it.get_tensor(it.get_output_details()[0]["index"]).reshape(ref.shape)
            print(f"| {name} | {path.stat().st_size:,} | {statistics.median(times):.2f} | "
                  f"{float(np.abs(out - ref).max()):.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
