"""`import edgeser` and the device runtime stay light: no torch, onnxruntime, sounddevice or matplotlib."""

import subprocess
import sys

HEAVY = ("torch", "onnxruntime", "sounddevice", "matplotlib", "tensorflow", "ai_edge_litert", "transformers")


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    return set(filter(None, out.split(",")))


def test_import_edgeser_is_light():
    assert _loaded_after("import edgeser") == set()


def test_runtime_imports_no_torch():
    assert _loaded_after("import edgeser.runtime, edgeser.runtime.predict, edgeser.runtime.audiofile") == set()


def test_doctests():
    import doctest

    import edgeser.audio
    import edgeser.metrics

    for module in (edgeser.metrics, edgeser.audio):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0
