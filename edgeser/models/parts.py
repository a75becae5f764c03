"""The parts of a student that exporters quantise or keep in float, named by the student itself.

A student's ``export_view(layout)`` returns a module that computes the student's function and whose
children are its parts, each named from :data:`PARTS`, with every op inside one of them. Traced for
export, every node then carries its part as the first name of its scope (``/body/convs.0/Conv``), which
is where :func:`edgeser.export.onnx.node_groups` reads it; ``quantisable_parts()`` lists a student's
parts without building a view.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PARTS", "view_parts"]

PARTS = ("frontend", "softmax", "head", "body")
"""``frontend``: waveform to log-mel (normalisation, STFT, mel projection, log); ``softmax``: the attention
pooling's weights over time (the logits, the softmax and the product with the pooled values); ``head``:
from the pooling's sum over time to the outputs (for a global average pooling, from that pooling on);
``body``: the conv trunk. A recipe's ``quantise.float_ops`` names parts from the first three."""


def view_parts(view: Any) -> tuple[str, ...]:
    """The part names of an export view: its children named from :data:`PARTS`, in their order."""
    return tuple(name for name, _ in view.named_children() if name in PARTS)
