"""Device-side runtime: numpy plus one inference engine. Never imports torch or the rest of edgeser.

This folder is copied as-is into every bundle (``runner/edgeser_runtime``), so every import inside it
is relative, and optional engines are imported only when used.
"""

from .engine import MODEL_METADATA_KEY, InputSpec, Runner, open_model

__all__ = ["InputSpec", "Runner", "open_model", "MODEL_METADATA_KEY"]
