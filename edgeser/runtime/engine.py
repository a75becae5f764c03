"""The engine protocol and :func:`open_model`, which picks the backend from the manifest or the file's content.

A bundle's ``manifest.json`` names its backend (``runtime.backend``). A bare model file is recognised
by its bytes (a TFLite flatbuffer carries ``TFL3`` at offset 4; anything else is tried as ONNX), never
by its name.
"""

from __future__ import annotations

from pathlib import Path

from .spec import BACKENDS, MODEL_METADATA_KEY, InputSpec, Runner

__all__ = ["InputSpec", "Runner", "open_model", "sniff_backend", "MODEL_METADATA_KEY", "BACKENDS"]


def sniff_backend(path: str | Path) -> str:
    """``litert`` for a TFLite flatbuffer, ``onnx`` otherwise, decided by the file's bytes."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    return "litert" if head[4:8] == b"TFL3" else "onnx"


def _from_bundle(folder: Path) -> tuple[Path, str, InputSpec | None, int]:
    from .integrity import open_bundle_model

    model, manifest = open_bundle_model(folder)
    try:
        runtime = manifest["runtime"]
        return model, runtime["backend"], InputSpec.from_dict(manifest["input"]), runtime["threads"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{folder / 'manifest.json'}: corrupt input spec ({exc})") from None


def open_model(path: str | Path, *, threads: int | None = 1, backend: str | None = None,
               edgetpu: bool | None = None) -> Runner:
    """Open a model file or a bundle folder with the right engine.

    A bundle is checked first (:func:`edgeser.runtime.integrity.open_bundle_model`): the model that
    is loaded is the one its manifest lists, with the listed sha256, and no unlisted code sits beside it.

    Args:
        path: a bundle folder (has ``manifest.json``) or a model file.
        threads: intra-op threads for the engine (default 1: predictable on small CPUs); None takes a
            bundle's ``runtime.threads`` (1 for a bare model file).
        backend: force ``onnx`` or ``litert`` instead of reading the manifest or sniffing the file.
        edgetpu: LiteRT models only: try the Edge TPU delegate (True), run on the CPU (False), or follow
            ``$EDGESER_EDGETPU`` (None, the default: off unless it is ``1``).

    Raises:
        FileNotFoundError: the path does not exist.
        BundleError: a folder that is not a bundle, or does not match its manifest (a ValueError).
        ImportError: the engine for this model is not installed (names the pip extra).
        ValueError: the backend name is unknown or the model cannot be loaded.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found")
    spec: InputSpec | None = None
    if path.is_dir():
        model, chosen, spec, bundle_threads = _from_bundle(path)
        threads = threads or bundle_threads
    else:
        model, chosen = path, sniff_backend(path)
        threads = threads or 1
    chosen = backend or chosen
    runner: Runner
    if chosen == "onnx":
        from . import onnx

        runner = onnx.load(model, threads=threads)
    elif chosen == "litert":
        from . import litert  # the manifest's spec covers files whose metadata a compiler dropped

        runner = litert.load(model, threads=threads, spec=spec, edgetpu=edgetpu)
    else:
        raise ValueError(f"unknown backend '{chosen}' (supported: {', '.join(BACKENDS)})")
    if spec is not None and getattr(runner, "own_spec", False) and runner.spec != spec:
        from .integrity import BundleError

        raise BundleError(path, ["manifest's input spec differs from the model's own metadata: "
                                 + ", ".join(k for k, v in spec.to_dict().items() if runner.spec.to_dict()[k] != v)])
    return runner
