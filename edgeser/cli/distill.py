"""``edgeser label`` (teacher labels for audio windows) and ``edgeser distill`` (train a student on them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .. import limits as L
from ..augment import AugmentConfig
from ..errors import InputError, OutputError
from ._app import app, console, err_console, handle_errors

_AUG = AugmentConfig()
"""Default augmentation ranges, quoted in the help texts."""

MAX_PROCESSES = 256
"""Most distillation processes ``--nproc`` starts on one machine."""


def _items(sources: list[Path]) -> list[Any]:
    from ..audio import list_audio

    seen: dict[Path, Any] = {}
    for src in sources:
        for item in list_audio(src):
            seen.setdefault(item.path.resolve(), item)
    return list(seen.values())


@app.command()
@handle_errors
def label(
    audio: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Audio files, folders, or list files (.csv with file[,speaker], "
            "or .txt with one path per line). Or give --manifest."
        ),
    ] = None,
    manifest: Annotated[
        Path | None, typer.Option(help="A manifest of any size instead of AUDIO: .csv or .parquet with file[,speaker] "
                                  "(read in chunks; Parquet needs pip install 'edgeser[ray]').")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Labels file to write: .csv, or .parquet.")] = Path(
        "labels.csv"),
    teacher: Annotated[
        str,
        typer.Option(
            help="Teacher: 'default' (the embedded reference teacher), an .onnx "
            "file, a transformers folder, or several joined with '+'."
        ),
    ] = "default",
    teacher_output: Annotated[str | None, typer.Option(help="ONNX output name to read.")] = None,
    window_seconds: Annotated[float, typer.Option(min=L.WINDOW_SECONDS.lo, max=L.WINDOW_SECONDS.hi,
                                                  help="Window length in seconds.")] = 2.0,
    hop_seconds: Annotated[
        float | None, typer.Option(min=L.HOP_SECONDS.lo, max=L.HOP_SECONDS.hi,
                                   help="Hop between windows (default: the window).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=L.BATCH_SIZE.lo, max=L.BATCH_SIZE.hi,
                                            help="Windows per teacher call.")] = 16,
    workers: Annotated[int, typer.Option(min=L.WORKERS.lo, max=L.WORKERS.hi,
                                         help="Parallel workers (see --parallel).")] = 1,
    threads: Annotated[int, typer.Option(min=L.THREADS.lo, max=L.THREADS.hi,
                                         help="Intra-op threads per worker.")] = 1,
    parallel: Annotated[str, typer.Option(help="Workers as 'process' (one teacher each) or 'thread' (one "
                                          "shared teacher).")] = "process",
    cache: Annotated[Path | None, typer.Option(help="Label cache (default: <out>.cache.sqlite).")] = None,
    skip_errors: Annotated[
        bool, typer.Option("--skip-errors", help="Skip unreadable audio instead of stopping.")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out (files in the cache "
                                            "are not labelled again).")] = False,
    device: Annotated[str, typer.Option(help="Where the teacher runs: auto (CUDA when there is one), cpu, cuda or "
                                        "cuda:N.")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32, or bf16/fp16 autocast on CUDA (transformers teachers).")
                         ] = "fp32",
    engine: Annotated[str, typer.Option(help="'local' (this machine's --workers) or 'ray' (a Ray Data pipeline "
                                        "with --workers teacher actors; pip install 'edgeser[ray]').")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="With --engine ray: the cluster to join and leave running "
                                                    "(auto, or HOST:PORT; run on a node of it); default: start a "
                                                    "local Ray instance and stop it at the end.")] = None,
    gpus_per_worker: Annotated[float, typer.Option(min=L.GPUS_PER_WORKER.lo, max=L.GPUS_PER_WORKER.hi,
                                                   help="With --engine ray: GPUs each teacher actor "
                                                   "reserves (fractions share one).")] = 0.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Label audio windows with a teacher. Finished files are cached, so an interrupted run resumes."""
    from ..fileio import check_output
    from ..label import LabelConfig, Manifest, default_cache_path
    from ..label import label as run_label
    from ..progress import reporting

    config = LabelConfig(window_seconds=window_seconds, hop_seconds=hop_seconds, batch_size=batch_size,
                         workers=workers, threads=threads, parallel=parallel, skip_errors=skip_errors, device=device,
                         precision=precision, engine=engine, ray_address=ray_address, gpus_per_worker=gpus_per_worker)
    config.validate()
    if bool(audio) == (manifest is not None):
        raise InputError("give the audio as AUDIO arguments or as --manifest, not both" if audio
                         else "nothing to label: give AUDIO (files, folders, list files) or --manifest")
    items: Any = Manifest.open(manifest) if manifest is not None else _items(audio or [])
    inputs = [manifest] if manifest is not None else [*(audio or []), *(item.path for item in items)]
    check_output(out, inputs=inputs, overwrite=overwrite)
    check_output(cache or default_cache_path(out), inputs=inputs, overwrite=True)  # an existing cache resumes
    with reporting(not quiet, err_console) as bars:
        result = run_label(items, teacher, out, config=config, cache=cache, teacher_output=teacher_output,
                           progress=bars)
    console.print(
        f"labelled {result.files} file(s), {result.rows} window(s) -> {out} "
        f"({result.cached_files} file(s) from the cache, teacher ran on {result.teacher_windows} "
        "window(s))",
        highlight=False,
        soft_wrap=True,
    )
    for line in result.skipped:
        console.print(f"[yellow]skipped[/] {line}", highlight=False, soft_wrap=True)


def _overrides(pairs: list[str]) -> dict[str, Any]:
    import json

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--student-config expects key=value, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _check_out(out: Path, *, inputs: list[Path], resume: bool, overwrite: bool) -> None:
    from ..distill import checkpoint_paths
    from ..fileio import check_output

    for path in (out, *checkpoint_paths(out)):  # the run writes all three: none may be an input
        check_output(path, inputs=inputs, overwrite=True)
    if out.exists() and not (resume or overwrite):
        raise OutputError("output exists already (use --resume to continue it or --overwrite)", path=out)


@app.command()
@handle_errors
def distill(
    labels: Annotated[Path, typer.Option(help="Labels CSV written by `edgeser label`.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Best checkpoint (.safetensors); the last epoch and the training state go beside it.",
        ),
    ] = Path("student.safetensors"),
    student: Annotated[str, typer.Option(help="Registered student (see docs/students.md).")] = "wav2small",
    student_config: Annotated[
        list[str] | None, typer.Option(help="Student hyper-parameter key=value (repeatable), e.g. n_fft=512, "
                                            "head_hidden=8, shape_stats=1; the keys are in docs/students.md.")
    ] = None,
    epochs: Annotated[int, typer.Option(min=L.EPOCHS.lo, max=L.EPOCHS.hi, help="Epochs to train.")] = 20,
    batch_size: Annotated[int, typer.Option(min=L.BATCH_SIZE.lo, max=L.BATCH_SIZE.hi,
                                            help="Windows per step.")] = 16,
    lr: Annotated[float, typer.Option(min=L.LEARNING_RATE.lo, max=L.LEARNING_RATE.hi,
                                      help="Peak learning rate.")] = 3e-3,
    loss: Annotated[str, typer.Option(help="ccc, mse or ccc+mse.")] = "ccc+mse",
    loss_weights: Annotated[
        tuple[float, float, float], typer.Option(min=L.LOSS_WEIGHT.lo, max=L.LOSS_WEIGHT.hi,
                                                 help="Loss weights of arousal, dominance, valence.")
    ] = (1.0, 1.0, 1.0),
    ema: Annotated[
        float,
        typer.Option(min=L.EMA_DECAY.lo, max=L.EMA_DECAY.hi,
                     help="Validate and save a moving average of the weights with this decay per step "
                     "(e.g. 0.998; 0: off)."),
    ] = 0.0,
    teacher: Annotated[
        str | None,
        typer.Option(help="Label every augmented training window again with this teacher (the one that wrote "
                     "--labels, e.g. 'default'): consistent targets for noisy and mixed windows."),
    ] = None,
    init: Annotated[
        Path | None, typer.Option(help="Start from this student checkpoint (same layout) instead of random weights.")
    ] = None,
    val_speakers: Annotated[
        list[str] | None,
        typer.Option(
            help="Held-out validation speaker (repeatable; default: about a fifth of the speakers)."
        ),
    ] = None,
    window_seconds: Annotated[
        float | None, typer.Option(min=L.WINDOW_SECONDS.lo, max=L.WINDOW_SECONDS.hi,
                                   help="Training window (default: the labels').")
    ] = None,
    windows_per_epoch: Annotated[
        int | None, typer.Option(min=L.WINDOWS_PER_EPOCH.lo, max=L.WINDOWS_PER_EPOCH.hi,
                                 help="Windows drawn per epoch (default: all).")
    ] = None,
    augment: Annotated[bool, typer.Option(help="Waveform augmentation of the training windows.")] = True,
    noise_prob: Annotated[float, typer.Option(min=L.PROBABILITY.lo, max=L.PROBABILITY.hi,
                                              help="Probability of added noise (white, pink or babble).")] = 0.6,
    min_snr_db: Annotated[float, typer.Option(min=L.SNR_DB.lo, max=L.SNR_DB.hi,
                                              help="Lowest SNR of added noise in dB (highest: 30).")] = 5.0,
    speed_prob: Annotated[
        float, typer.Option(min=L.PROBABILITY.lo, max=L.PROBABILITY.hi,
                            help="Probability of a {}-{}x speed change (tempo and pitch).".format(*_AUG.speed_range))
    ] = _AUG.speed_prob,
    mix_prob: Annotated[float, typer.Option(min=L.PROBABILITY.lo, max=L.PROBABILITY.hi,
                                            help="Probability of mixing two windows (mixup).")] = 0.0,
    warp_prob: Annotated[
        float, typer.Option(min=L.PROBABILITY.lo, max=L.PROBABILITY.hi,
                            help=f"Probability of a speed warp (speed drifting in {1 - _AUG.warp_depth:g}-"
                            f"{1 + _AUG.warp_depth:g}x; reshapes the F0 contour).")
    ] = 0.0,
    formant_prob: Annotated[
        float, typer.Option(min=L.PROBABILITY.lo, max=L.PROBABILITY.hi,
                            help="Probability of a formant shift (formants moved by {}-{}x; pitch and tempo kept)."
                            .format(*_AUG.formant_range))
    ] = 0.0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run saved beside --out.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out.")] = False,
    threads: Annotated[int, typer.Option(min=L.THREADS.lo, max=L.THREADS.hi,
                                         help="torch threads (per process).")] = 1,
    seed: Annotated[int, typer.Option(min=L.SEED.lo, max=L.SEED.hi, help="Random seed.")] = 0,
    device: Annotated[str, typer.Option(help="Where the student (and --teacher) run: auto (CUDA when there), cpu, "
                                        "cuda or cuda:N; with several processes, cuda is each one's own GPU.")]
    = "auto",
    precision: Annotated[str, typer.Option(help="fp32, or bf16 / fp16 autocast on CUDA (fp32 weights).")] = "fp32",
    nproc: Annotated[int, typer.Option(min=1, max=MAX_PROCESSES,
                                       help="Train with this many DDP processes on this machine (leave out under "
                                       "torchrun, which starts them itself).")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Train a student on a teacher's labels only, validating on held-out speakers every epoch.

    Under torchrun (or with --nproc), the processes train together (PyTorch DDP); rank 0 validates, shows
    progress and writes the checkpoints.
    """
    from ..devices import resolve
    from ..distill import DistillConfig, distill_processes
    from ..distill import distill as run_distill
    from ..distill.ddp import world_from_env
    from ..progress import reporting

    _check_out(out, inputs=[labels, *([init] if init else [])], resume=resume, overwrite=overwrite)
    aug = (AugmentConfig(noise_prob=noise_prob, snr_db=(min_snr_db, max(min_snr_db, 30.0)), speed_prob=speed_prob,
                         mix_prob=mix_prob, warp_prob=warp_prob, formant_prob=formant_prob)
           if augment else AugmentConfig.off())
    config = DistillConfig(
        student=student, student_config=_overrides(student_config or []), epochs=epochs, batch_size=batch_size,
        lr=lr, loss=loss, loss_weights=loss_weights, ema=ema, init=str(init) if init else None, teacher=teacher,
        val_speakers=val_speakers or None, window_seconds=window_seconds, windows_per_epoch=windows_per_epoch,
        augment=aug, seed=seed, threads=threads,
    )
    resolve(device, precision)  # a device this machine lacks: one line before anything starts
    if nproc > 1:
        result = distill_processes(nproc, labels, out, config=config, resume=resume, device=device,
                                   precision=precision, show_progress=not quiet)
    else:
        with reporting(not quiet and world_from_env().main, err_console) as bars:
            result = run_distill(labels, out, config=config, resume=resume, device=device, precision=precision,
                                 progress=bars)
    if result.rank != 0:  # under torchrun: rank 0 reports
        return
    scores = "  ".join(f"{d} {v:.3f}" for d, v in result.best_ccc.items())
    console.print(
        f"best epoch {result.best_epoch}: CCC(student, teacher) on held-out "
        f"{', '.join(result.val_speakers)}: {scores}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"best -> {result.best}; last -> {result.last}", highlight=False, soft_wrap=True)
