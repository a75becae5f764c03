"""`import edgeser` and the device runtime stay light: no torch, onnxruntime, sounddevice or matplotlib."""

import subprocess
import sys

HEAVY = ("torch", "onnxruntime", "sounddevice", "matplotlib", "tensorflow", "ai_edge_litert", "transformers", "ray",
         "pyarrow")


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    return set(filter(None, out.split(",")))


def test_import_edgeser_is_light():
    assert _loaded_after("import edgeser") == set()


def test_runtime_imports_no_torch():
    assert _loaded_after("import edgeser.runtime, edgeser.runtime.predict, edgeser.runtime.audiofile") == set()


def test_label_without_the_ray_engine_never_imports_ray(tmp_path):
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "a.wav", 0.1 * np.sin(np.arange(16_000, dtype=np.float32) / 5), 16_000)
    run = ("from typer.testing import CliRunner; from edgeser.cli import app; "
           f"r = CliRunner().invoke(app, ['label', {str(tmp_path / 'a.wav')!r}, '--out', "
           f"{str(tmp_path / 'l.csv')!r}, '-q']); assert r.exit_code == 0, r.output")
    assert "ray" not in _loaded_after(run)
    assert (tmp_path / "l.csv").is_file()


def test_doctests():
    import doctest

    import edgeser.audio
    import edgeser.metrics

    for module in (edgeser.metrics, edgeser.audio):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0
