"""Device entry point; run from the bundle folder:

    python -m runner FILE [FILE ...]        # A/D/V per file (mean over windows for long files)
    python -m runner --per-window FILE      # one line per window too
    python -m runner --mic [--device NAME] [--log FILE.csv]  # microphone, one JSON line per update

Needs numpy, onnxruntime and soundfile (soxr for resampling); sounddevice for --mic.
The command line itself lives in edgeser_runtime/cli.py, shared by every target.
"""

import sys
from pathlib import Path

from .edgeser_runtime.cli import main

if __name__ == "__main__":
    sys.exit(main(bundle=Path(__file__).resolve().parent.parent))
