"""One labelling run: hash the files, skip the cached ones, label the rest, write the CSV in input order."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..audio import AudioItem
from ..errors import InputError, OutputError
from ..fileio import check_output, sha256_file
from ..progress import Reporter, silent
from .cache import Cache, default_cache_path
from .config import LabelConfig, LabelResult
from .output import file_rows, write_csv
from .workers import collect, executor, teacher_identity

__all__ = ["label", "file_sha256"]


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    return sha256_file(Path(path))


def _hash_items(
    items: Sequence[AudioItem], config: LabelConfig, skipped: list[str]
) -> list[tuple[AudioItem, str]]:
    hashed = []
    for item in items:
        try:
            hashed.append((item, file_sha256(item.path)))
        except FileNotFoundError:
            if not config.skip_errors:
                raise InputError("audio file not found", path=item.path) from None
            skipped.append(f"{item.path}: audio file not found")
        except OSError as exc:
            if not config.skip_errors:
                raise InputError(f"cannot read audio ({exc.strerror})", path=item.path) from None
            skipped.append(f"{item.path}: cannot read audio ({exc.strerror})")
    return hashed


def _check_outputs(out: Path, cache: Path, items: Sequence[AudioItem]) -> None:
    """Neither the labels nor the cache may be one of the audio files, or each other."""
    inputs = [item.path for item in items]
    check_output(out, inputs=inputs, overwrite=True)
    check_output(cache, inputs=inputs, overwrite=True)
    if cache.resolve() == out.resolve():
        raise OutputError("the label cache cannot be the labels file itself; choose another --cache", path=cache)


def label(items: Sequence[AudioItem], teacher: Any, out: str | Path, *, config: LabelConfig | None = None,
          cache: str | Path | None = None, teacher_output: str | None = None,
          progress: Reporter = silent) -> LabelResult:
    """Label audio windows with a teacher and write a labels CSV (atomically).

    Args:
        items: audio files (see :func:`edgeser.audio.list_audio`), labelled in this order.
        teacher: a loaded :class:`~edgeser.teachers.Teacher` (workers are then threads sharing it), or a
            teacher spec for :func:`~edgeser.teachers.load_teacher` (a path, ``default``, ``a+b``), which each
            worker process loads itself when ``config.workers > 1``.
        out: the labels CSV (columns :data:`~edgeser.label.COLUMNS`); replaced if it exists.
        config: window, batch and parallelism settings.
        cache: the SQLite cache (default: beside ``out``, ``<out>.cache.sqlite``).
        teacher_output: the ONNX output to read, when ``teacher`` is a spec (see ``load_teacher``).
        progress: where the labelling is reported (:func:`edgeser.progress.progress_bars` shows it on stderr).

    Returns:
        counts of what was done, and the files skipped with ``skip_errors``.

    Raises:
        InputError: an audio file is missing or unreadable (unless ``skip_errors``), the teacher cannot be
            loaded, or the teacher fails on a batch. Finished files stay in the cache.
        OutputError: the CSV or the cache is one of the audio files, or cannot be written.
    """
    config = config or LabelConfig()
    config.validate()
    out = Path(out)
    cache_path = Path(cache) if cache is not None else default_cache_path(out)
    _check_outputs(out, cache_path, items)
    result = LabelResult(out=out)
    spec = None if hasattr(teacher, "identity") else str(teacher)
    if spec is not None and (config.workers == 1 or config.parallel == "thread"):
        from ..teachers import load_teacher

        teacher, spec = load_teacher(spec, output=teacher_output, threads=config.threads), None
    hashed = _hash_items(items, config, result.skipped)
    store = Cache(cache_path)
    pool, run = executor(teacher if spec is None else None, spec, teacher_output, config)
    try:
        identity = teacher_identity(pool, teacher if spec is None else None)
        key = (identity, config.window_samples, config.hop_samples)
        sha_of = {str(item.path): sha for item, sha in hashed}
        todo = sorted({str(item.path) for item, sha in hashed if store.get(sha, *key) is None})
        result.cached_files = len(hashed) - len(todo)

        def keep(path: str, values: list[list[float]] | str) -> None:
            if isinstance(values, str):
                result.skipped.append(f"{path}: {values}")
            else:
                store.put(sha_of[path], *key, values)
                result.teacher_windows += len(values)

        if todo:
            collect(pool, run, todo, config, keep, progress)
        rows: list[list[Any]] = []
        for item, sha in hashed:
            values = store.get(sha, *key)
            if values is not None:
                rows.extend(file_rows(item, values, sha, identity, out, config.window_seconds))
                result.files += 1
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        store.close()
    write_csv(out, rows)
    result.rows = len(rows)
    return result
