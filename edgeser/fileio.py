"""Atomic file writes, and hashing: the host's one home for both.

Writes go to a temporary file beside the destination, renamed onto it only when complete.

``tempfile.mkstemp`` creates files readable by their owner only; a finished output gets the usual
``FILE_MODE`` (and a finished folder ``DIR_MODE``) so that copying a model or a bundle to a device, or
sharing it with another user, works as with any other file.

Hashes: :func:`sha256_file` is the device runtime's own (``edgeser.runtime.integrity``), re-exported
here so host modules take it from one place; :func:`sha256_files` and :func:`sha256_bytes` cover the
identities built from several files or from text.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .runtime.integrity import sha256_file

__all__ = ["DIR_MODE", "FILE_MODE", "replacing", "check_output", "sha256_file", "sha256_files", "sha256_bytes"]

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


def sha256_files(paths: Iterable[str | Path], *, extra: bytes = b"") -> str:
    """Hex sha256 of the files' bytes read one after the other, then ``extra``.

    One file and no ``extra`` gives the same digest as :func:`sha256_file`.

    Examples:
        >>> sha256_files([]) == sha256_bytes(b"")
        True
    """
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    h.update(extra)
    return h.hexdigest()


def sha256_bytes(data: bytes | str) -> str:
    """Hex sha256 of ``data`` (a ``str`` is encoded as UTF-8).

    Examples:
        >>> sha256_bytes("abc")[:16]
        'ba7816bf8f01cfea'
    """
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()
