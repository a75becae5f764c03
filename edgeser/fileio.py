"""Atomic file writes: a temporary file beside the destination, renamed onto it only when complete.

``tempfile.mkstemp`` creates files readable by their owner only; a finished output gets the usual
``FILE_MODE`` (and a finished folder ``DIR_MODE``) so that copying a model or a bundle to a device, or
sharing it with another user, works as with any other file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "replacing", "check_output"]

FILE_MODE = 0o644
"""Permissions of a finished output file."""
DIR_MODE = 0o755
"""Permissions of a finished output folder."""


@contextmanager
def replacing(dest: str | Path, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; when the block ends, rename it onto ``dest``.

    If the block raises, the temporary file is removed and ``dest`` is left as it was. OSError (from the
    block or the rename) propagates; callers turn it into an OutputError naming ``dest``.
    """
    dest = Path(dest)
    parent = dest.parent if str(dest.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.tmp-", suffix=suffix, dir=parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def check_output(out: str | Path, *, inputs: Iterable[str | Path] = (), overwrite: bool = False) -> None:
    """Refuse an output path that names one of the command's inputs, or that exists without ``overwrite``.

    Raises:
        OutputError: naming ``out`` (exit 5).
    """
    from .errors import OutputError

    out = Path(out)
    if out.exists():
        for item in inputs:
            if Path(item).exists() and os.path.samefile(item, out):
                raise OutputError(f"is also an input of this command ({item}); choose another output", path=out)
        if not overwrite:
            raise OutputError("output exists already (use --overwrite or another output)", path=out)
