"""Distillation and augmentation: loss goes down, checkpoints load, resume continues, errors, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from edgeser import augment, models
from edgeser.audio import list_audio
from edgeser.cli import app
from edgeser.distill import DistillConfig, ccc_loss, checkpoint_paths, config_of, distill
from edgeser.errors import InputError
from edgeser.label import LabelConfig, label, read_labels
from edgeser.metrics import ccc
from edgeser.teachers import load_teacher

TINY_STUDENT = {"channels": 4}
"""A 4-channel Wav2Small: the same code path as the default student, a few times cheaper."""


@pytest.fixture(scope="module")
def labels(tmp_path_factory: pytest.TempPathFactory, corpus: Path, teacher_onnx: Path) -> Path:
    out = tmp_path_factory.mktemp("distill") / "labels.csv"
    label(list_audio(corpus), load_teacher(teacher_onnx), out, config=LabelConfig(window_seconds=0.5))
    return out


def _config(**kw: object) -> DistillConfig:
    base = {
        "student_config": TINY_STUDENT,
        "epochs": 3,
        "batch_size": 8,
        "lr": 1e-2,
        "windows_per_epoch": 48,
        "val_speakers": ["spk3"],
        "augment": augment.AugmentConfig.off(),
    }
    return DistillConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_distill_lowers_the_loss_and_saves_loadable_checkpoints(tmp_path: Path, labels: Path) -> None:
    out = tmp_path / "student.safetensors"
    result = distill(labels, out, config=_config(epochs=4))
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0]
    assert result.val_speakers == ["spk3"] and result.val_windows == 24 and result.train_windows == 72
    model = models.load(out)
    assert model.cfg.channels == 4
    last, state = checkpoint_paths(out)
    assert last.is_file() and state.is_file()
    extra = json.loads(models.read_metadata(out)["extra"])
    assert extra["epoch"] == result.best_epoch and extra["val_speakers"] == ["spk3"]
    assert extra["val_ccc"] == pytest.approx(result.best_ccc)
    table = read_labels(labels)
    x = np.stack([np.zeros(8000, np.float32) + 0.01 * np.sin(np.arange(8000, dtype=np.float32))] * 2)
    with torch.no_grad():
        assert model(torch.from_numpy(x)).shape == (2, 3)
    assert extra["teacher"] == table.teacher
    assert config_of(out) == _config(epochs=4)  # the whole recipe comes back from the checkpoint
    config = _config(augment=augment.AugmentConfig(formant_prob=0.3, mix_prob=0.2), loss_weights=(1.0, 1.0, 2.0))
    assert DistillConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    plain = tmp_path / "plain.safetensors"
    models.save(models.create_model("wav2small", **TINY_STUDENT), plain, extra={"made_by": "a test"})
    with pytest.raises(InputError, match="no distillation settings in its metadata"):
        config_of(plain)


def test_resume_continues_from_the_saved_epoch(tmp_path: Path, labels: Path) -> None:
    out = tmp_path / "student.safetensors"
    first = distill(labels, out, config=_config(epochs=2))
    resumed = distill(labels, out, config=_config(epochs=3), resume=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert resumed.history[:2] == first.history
    with pytest.raises(InputError, match="already finished 3 epochs"):
        distill(labels, out, config=_config(epochs=3), resume=True)
    with pytest.raises(InputError, match="nothing to resume"):
        distill(labels, tmp_path / "other.safetensors", config=_config(), resume=True)


def _interrupted_in_epoch_2(monkeypatch: pytest.MonkeyPatch, labels: Path, out: Path, config: DistillConfig) -> None:
    """Run ``distill`` until a KeyboardInterrupt in its second epoch (the first is saved), as Ctrl-C would."""
    import edgeser.distill.loop as module

    real, calls = module._train_epoch, []

    def stop_in_second_epoch(*args: object, **kwargs: object) -> float:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "_train_epoch", stop_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        distill(labels, out, config=config)
    monkeypatch.setattr(module, "_train_epoch", real)


def test_resume_after_an_interruption_matches_a_straight_run(
    tmp_path: Path, labels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = distill(labels, tmp_path / "a.safetensors", config=_config(epochs=2))
    _interrupted_in_epoch_2(monkeypatch, labels, tmp_path / "b.safetensors", _config(epochs=2))
    resumed = distill(labels, tmp_path / "b.safetensors", config=_config(epochs=2), resume=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert resumed.history[1]["loss"] == pytest.approx(straight.history[1]["loss"], rel=1e-4)
    assert resumed.history[1]["val_ccc"] == pytest.approx(straight.history[1]["val_ccc"], abs=1e-4)


def test_any_registered_student_trains(tmp_path: Path, labels: Path) -> None:
    result = distill(
        labels,
        tmp_path / "m.safetensors",
        config=_config(
            student="mobilenetv4_conv_small.035", student_config={}, epochs=1, windows_per_epoch=16
        ),
    )
    assert models.load(result.best).arch.startswith("mobilenet")


def test_ccc_loss_matches_the_metric() -> None:
    rng = np.random.default_rng(0)
    y = rng.random((32, 3)).astype(np.float32)
    p = (y + 0.3 * rng.standard_normal((32, 3))).astype(np.float32)
    loss = float(ccc_loss(torch.from_numpy(p), torch.from_numpy(y)))
    assert loss == pytest.approx(1 - ccc(p, y).mean(), abs=1e-5)
    assert float(ccc_loss(torch.from_numpy(y), torch.from_numpy(y))) == pytest.approx(0.0, abs=1e-5)


def test_loss_weights_weigh_the_dimensions() -> None:
    rng = np.random.default_rng(1)
    y = rng.random((32, 3)).astype(np.float32)
    p = (y + rng.standard_normal((32, 3)) * np.array([0.1, 0.3, 0.6])).astype(np.float32)
    per_dim = 1 - ccc(p, y)
    tp, ty = torch.from_numpy(p), torch.from_numpy(y)
    assert float(ccc_loss(tp, ty, torch.tensor([0.0, 0.0, 1.0]))) == pytest.approx(per_dim[2], abs=1e-5)
    weighted = float(ccc_loss(tp, ty, torch.tensor([1.0, 1.0, 2.0])))
    assert weighted == pytest.approx((per_dim[0] + per_dim[1] + 2 * per_dim[2]) / 4, abs=1e-5)
    assert weighted > float(ccc_loss(tp, ty))  # valence is the worst column here, so weighing it up costs
    for bad in [(0.0, 0.0, 0.0), (1.0, -1.0, 1.0), (1.0, 1.0)]:
        with pytest.raises(InputError, match="--loss-weights"):
            _config(loss_weights=bad).validate()


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k.endswith("conv.weight") or k.startswith("adv")}


def test_ema_saves_and_resumes_the_moving_average(
    tmp_path: Path, labels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "ema.safetensors"
    straight = distill(labels, tmp_path / "straight.safetensors", config=_config(epochs=2, ema=0.9))
    _interrupted_in_epoch_2(monkeypatch, labels, out, _config(epochs=2, ema=0.9))
    state = torch.load(checkpoint_paths(out)[1], weights_only=True)
    saved = models.load(checkpoint_paths(out)[0])
    averaged = {k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")}
    raw = state["model"]
    for key, value in _weights(saved).items():
        assert torch.equal(value, averaged[key]), key  # the checkpoint is the average ...
    assert any(not torch.allclose(v, raw[k]) for k, v in _weights(saved).items())  # ... not the raw weights
    resumed = distill(labels, out, config=_config(epochs=2, ema=0.9), resume=True)
    assert resumed.history[1]["val_ccc"] == pytest.approx(straight.history[1]["val_ccc"], abs=1e-4)
    with pytest.raises(InputError, match="differ in --ema"):
        distill(labels, out, config=_config(epochs=3), resume=True)
    with pytest.raises(InputError, match="--ema must be"):
        _config(ema=1.0).validate()


def test_the_moving_average_ramps_up_its_decay() -> None:
    from edgeser.distill.ema import _ema_step

    step, avg, new = _ema_step(0.998), torch.zeros(2), torch.ones(2)
    assert float(step(avg, new, torch.tensor(1))[0]) == pytest.approx(1 - 2 / 11)  # early: mostly the new weights
    assert float(step(avg, new, torch.tensor(10_000))[0]) == pytest.approx(0.002)  # later: the set decay


def test_init_starts_from_a_checkpoint(tmp_path: Path, labels: Path) -> None:
    first = distill(labels, tmp_path / "a.safetensors", config=_config(epochs=1)).best
    tuned = distill(labels, tmp_path / "b.safetensors", config=_config(epochs=1, lr=1e-12, init=str(first)))
    fresh = distill(labels, tmp_path / "c.safetensors", config=_config(epochs=1, lr=1e-12, seed=5))
    start, after, other = (_weights(models.load(p)) for p in (first, tuned.best, fresh.best))
    assert all(torch.allclose(start[k], after[k], atol=1e-6) for k in start)
    assert not all(torch.allclose(start[k], other[k], atol=1e-6) for k in start)
    wider = distill(labels, tmp_path / "w.safetensors", config=_config(epochs=1, student_config={"channels": 5})).best
    with pytest.raises(InputError, match="w.safetensors: --init checkpoint does not fit the student"):
        distill(labels, tmp_path / "d.safetensors", config=_config(init=str(wider)))
    with pytest.raises(InputError, match="model file not found"):
        distill(labels, tmp_path / "d.safetensors", config=_config(init=str(tmp_path / "none.safetensors")))


def test_an_online_teacher_labels_the_augmented_windows(
    tmp_path: Path, labels: Path, teacher_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edgeser.distill.loop as module

    seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    real_batch, real_loss = augment.Augmenter.batch, module._loss

    def spy_batch(self: augment.Augmenter, *args: object, **kwargs: object) -> tuple[np.ndarray, np.ndarray]:
        xb, yb = real_batch(self, *args, **kwargs)  # type: ignore[arg-type]
        seen.append((xb, yb, np.empty(0)))
        return xb, yb

    def spy_loss(kind: str, pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        seen[-1] = (*seen[-1][:2], target.numpy().copy())
        return real_loss(kind, pred, target, weights)

    monkeypatch.setattr(augment.Augmenter, "batch", spy_batch)
    monkeypatch.setattr(module, "_loss", spy_loss)
    noisy = augment.AugmentConfig(noise_prob=1.0, snr_db=(0.0, 5.0), mix_prob=0.5)
    distill(labels, tmp_path / "s.safetensors",
            config=_config(epochs=1, windows_per_epoch=16, augment=noisy, teacher=str(teacher_onnx)))
    teacher = load_teacher(teacher_onnx)
    for xb, _, used in seen:
        np.testing.assert_allclose(used, teacher(xb), atol=1e-6)  # the teacher's view of the noisy window ...
    assert not np.allclose(seen[0][1], seen[0][2], atol=1e-3)  # ... not the clean window's label


def test_an_online_teacher_must_be_the_one_that_labelled(tmp_path: Path, labels: Path) -> None:
    with pytest.raises(InputError, match="but the labels were made by"):
        distill(labels, tmp_path / "s.safetensors", config=_config(epochs=1, teacher="default"))


def test_distill_errors(tmp_path: Path, labels: Path, corpus: Path) -> None:
    with pytest.raises(InputError, match="validation speaker"):
        distill(labels, tmp_path / "s.safetensors", config=_config(val_speakers=["nobody"]))
    with pytest.raises(InputError, match="unknown loss"):
        distill(labels, tmp_path / "s.safetensors", config=_config(loss="l1"))
    with pytest.raises(InputError, match="unknown student"):
        distill(labels, tmp_path / "s.safetensors", config=_config(student="resnet"))
    text = labels.read_text().splitlines()
    nan = tmp_path / "nan.csv"
    nan.write_text("\n".join([text[0], text[1].replace(text[1].split(",")[5], "nan", 1)]) + "\n")
    with pytest.raises(InputError, match="line 2: arousal is nan"):
        distill(nan, tmp_path / "s.safetensors", config=_config())


def test_changed_audio_is_refused(tmp_path: Path, labels: Path) -> None:
    table = read_labels(labels)
    copy = tmp_path / "copy.flac"
    copy.write_bytes(table.files[0].read_bytes())
    rows = labels.read_text().splitlines()
    first = rows[1].split(",")[0]
    lines = [rows[0]] + [
        str(copy) + r[len(first) :] if r.startswith(first + ",") else str(labels.parent / r) for r in rows[1:]
    ]
    moved = tmp_path / "labels.csv"
    moved.write_text("\n".join(lines) + "\n")
    import soundfile as sf

    x, rate = sf.read(copy, dtype="float32")
    sf.write(copy, x * 0.5, rate)
    with pytest.raises(InputError, match="copy.flac: audio changed since labelling"):
        distill(moved, tmp_path / "s.safetensors", config=_config(val_speakers=None))


def test_cli_distill(tmp_path: Path, labels: Path) -> None:
    out = tmp_path / "student.safetensors"
    args = [
        "distill",
        "--labels",
        str(labels),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--windows-per-epoch",
        "16",
        "--student-config",
        "channels=4",
        "--val-speakers",
        "spk3",
        "--no-augment",
    ]
    ok = CliRunner().invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert "best epoch 1" in ok.output and "spk3" in ok.output and out.is_file()
    exists = CliRunner().invoke(app, args)
    assert exists.exit_code == 5 and "output exists already" in exists.output
    tuned_out = tmp_path / "tuned.safetensors"
    tuned = CliRunner().invoke(
        app, [*args[:3], "--out", str(tuned_out), *args[5:-1], "--init", str(out), "--ema", "0.9",
              "--loss-weights", "1", "1", "2", "--formant-prob", "0.5"]  # augmented, formant shifts included
    )
    assert tuned.exit_code == 0, tuned.output
    assert config_of(tuned_out).loss_weights == (1, 1, 2) and config_of(tuned_out).augment.formant_prob == 0.5
    bad = CliRunner().invoke(app, [*args[:3], "--out", str(tmp_path / "x.safetensors"), "--loss", "l1"])
    assert bad.exit_code == 2 and "unknown loss" in bad.output



def test_cli_distill_shows_progress_on_stderr_unless_quiet(tmp_path: Path, labels: Path) -> None:
    args = ["distill", "--labels", str(labels), "--epochs", "1", "--batch-size", "8", "--windows-per-epoch", "16",
            "--student-config", "channels=4", "--val-speakers", "spk3", "--no-augment"]
    shown = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a.safetensors")])
    assert shown.exit_code == 0, shown.output
    assert "reading audio" in shown.stderr and "epoch 1/1" in shown.stderr and "val CCC A " in shown.stderr
    assert "epoch 1/1" not in shown.stdout and "best epoch 1" in shown.stdout
    quiet = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b.safetensors"), "--quiet"])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == "" and "best epoch 1" in quiet.stdout


def test_cli_distill_never_writes_over_its_labels_or_init(tmp_path: Path, labels: Path) -> None:
    copy = tmp_path / "labels.csv"
    copy.write_bytes(labels.read_bytes())
    first = distill(copy, tmp_path / "s.safetensors", config=_config(epochs=1)).last  # s.last.safetensors
    before = {p: p.read_bytes() for p in (copy, first)}
    base = ["distill", "--labels", str(copy), "--epochs", "1", "--student-config", "channels=4", "--overwrite",
            "--val-speakers", "spk3", "-q"]
    for extra in (["--out", str(copy)], ["--init", str(first), "--out", str(first)],
                  ["--init", str(first), "--out", str(tmp_path / "s.safetensors")]):  # its last would be the init
        result = CliRunner().invoke(app, [*base, *extra])
        assert result.exit_code == 5, result.output
        assert "is also an input of this command" in result.stderr
    assert {p: p.read_bytes() for p in before} == before

def test_augmentations_do_what_they_say() -> None:
    rng = np.random.default_rng(0)
    x = np.sin(np.arange(16_000) * 0.05).astype(np.float32) * 0.3
    noisy = augment.add_noise(x, augment.pink_noise(16_000, rng), 10.0)
    snr = 10 * np.log10(np.mean(x**2) / np.mean((noisy - x) ** 2))
    assert snr == pytest.approx(10.0, abs=0.01)
    assert len(augment.speed(x, 1.1)) == pytest.approx(16_000 / 1.1, abs=2)
    assert augment.random_crop(x, 8000, rng).shape == (8000,)
    padded = augment.random_crop(x[:4000], 8000, rng)
    assert padded.shape == (8000,) and np.count_nonzero(padded) <= 4000
    assert augment.gain(x, -6.0).max() == pytest.approx(x.max() / 10 ** (6 / 20), rel=1e-5)
    batch = np.stack([x, -x, x * 0.5])
    targets = np.eye(3, dtype=np.float32)
    mixed_x, mixed_y = augment.mixup(batch, targets, rng, prob=1.0, weight=(0.7, 0.7))
    assert np.allclose(mixed_y.sum(1), 1.0) and np.allclose(mixed_y.max(1), 0.7)
    out, y = augment.Augmenter(augment.AugmentConfig(), seed=1).batch([x, x[:9000], x], targets, 12_000)
    assert out.shape == (3, 12_000) and out.dtype == np.float32 and np.abs(out).max() <= 1.0
    assert np.array_equal(y, targets)  # mix_prob is 0 by default
    off, _ = augment.Augmenter(augment.AugmentConfig.off()).batch([x], targets[:1], 16_000)
    assert np.array_equal(off[0], x)


def _pitch_per_tenth(x: np.ndarray) -> np.ndarray:
    """Zero crossings / 2 per 0.1 s of a pure tone: its frequency in Hz, tenth by tenth."""
    crossings = np.flatnonzero(np.diff(np.signbit(x)))
    return np.array([((crossings >= a) & (crossings < a + 1600)).sum() / 0.2 for a in range(0, len(x) - 1600, 1600)])


def test_a_speed_warp_reshapes_the_pitch_contour_where_speed_only_shifts_it() -> None:
    tone = np.sin(2 * np.pi * 200 * np.arange(32_000) / 16_000).astype(np.float32)
    warped = augment.warp(tone, 0.08, np.random.default_rng(3))
    pitch = _pitch_per_tenth(warped)
    assert pitch.max() - pitch.min() >= 15  # the contour moves within the clip...
    assert pitch.min() >= 200 * 0.92 - 10 and pitch.max() <= 200 * 1.08 + 10  # ...inside the depth
    flat = _pitch_per_tenth(augment.speed(tone, 1.05))
    assert flat.max() - flat.min() <= 10  # a plain speed change keeps it flat
    assert abs(len(warped) - len(tone)) < 0.08 * len(tone)
    assert np.array_equal(augment.warp(tone, 0.0, np.random.default_rng(0)), tone)
    on = augment.Augmenter(augment.AugmentConfig(warp_prob=1.0, speed_prob=0.0, crop_prob=0.0), seed=0)
    off = augment.Augmenter(augment.AugmentConfig(speed_prob=0.0, crop_prob=0.0), seed=0)
    assert not np.allclose(on.clip(tone, 32_000), tone[:32_000]) and np.array_equal(off.clip(tone, 32_000), tone)


def _vowel(f0: float, formants: tuple[float, ...], seconds: float = 1.0) -> np.ndarray:
    """A harmonic series at ``f0`` shaped by resonances (100 Hz half-width) at ``formants``."""
    t = np.arange(int(16_000 * seconds)) / 16_000
    x = sum(sum(1 / np.sqrt(1 + ((k * f0 - f) / 100) ** 2) for f in formants) * np.sin(2 * np.pi * k * f0 * t)
            for k in range(1, int(7800 // f0) + 1))
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def _harmonic_amplitudes(x: np.ndarray, f0: float) -> np.ndarray:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.array([spectrum[int(round(k * f0 * len(x) / 16_000))] for k in range(1, int(7800 // f0) + 1)])


def _autocorrelation_pitch(x: np.ndarray) -> float:
    ac = np.correlate(x[:4000], x[:4000], "full")[3999:]
    lo, hi = 16_000 // 450, 16_000 // 70
    return 16_000 / (lo + int(np.argmax(ac[lo:hi])))


@pytest.mark.parametrize("factor", [0.87, 1.15])
def test_a_formant_shift_moves_the_resonances_and_keeps_the_pitch(factor: float) -> None:
    vowel = _vowel(150.0, (800.0, 2400.0))
    shifted = augment.formant(vowel, factor)
    assert shifted.shape == vowel.shape and shifted.dtype == np.float32
    assert _autocorrelation_pitch(shifted) == pytest.approx(_autocorrelation_pitch(vowel), rel=0.01)
    # Energy-weighted frequency of the harmonics below 3 kHz: moves with the resonances, by about the factor.
    centroid = [float((a[:20] ** 2 * np.arange(1, 21) * 150.0).sum() / (a[:20] ** 2).sum())
                for a in (_harmonic_amplitudes(vowel, 150.0), _harmonic_amplitudes(shifted, 150.0))]
    assert 0.6 <= (centroid[1] / centroid[0] - 1) / (factor - 1) <= 1.4
    # The strongest harmonic under 1.5 kHz follows the first formant (800 Hz to 696 or 920).
    strongest = 150.0 * (1 + int(np.argmax(_harmonic_amplitudes(shifted, 150.0)[:10])))
    assert abs(strongest - 800.0 * factor) <= 75.0
    assert np.abs(augment.formant(vowel, 1.0001) - vowel)[800:-800].max() < 1e-3  # nearly the identity
    assert np.array_equal(augment.formant(vowel, 1.0), vowel)
    assert not np.any(augment.formant(np.zeros(8000, np.float32), factor))  # silence stays silence


def test_the_augmenter_applies_formant_shifts_only_when_asked() -> None:
    vowel = _vowel(200.0, (700.0,), seconds=2.0)
    on = augment.Augmenter(augment.AugmentConfig(formant_prob=1.0, speed_prob=0.0, crop_prob=0.0), seed=0)
    off = augment.Augmenter(augment.AugmentConfig(speed_prob=0.0, crop_prob=0.0), seed=0)
    assert not np.allclose(on.clip(vowel, 32_000), vowel, atol=1e-2) and np.array_equal(off.clip(vowel, 32_000), vowel)
    with pytest.raises(InputError, match="formant range"):
        augment.AugmentConfig(formant_range=(1.1, 0.9))


@pytest.mark.parametrize("option", ["--warp-prob", "--formant-prob", "--speed-prob", "--noise-prob", "--mix-prob"])
def test_a_probability_outside_0_1_is_a_one_line_input_error(option: str, tmp_path: Path) -> None:
    out = tmp_path / "s.safetensors"
    result = CliRunner().invoke(app, ["distill", "--labels", str(tmp_path / "none.csv"), "--out", str(out),
                                      option, "1.5"])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}': Input should be less than or equal to 1" in result.output
    assert not any(tmp_path.iterdir())


def test_a_bad_student_setting_fails_before_the_labels_are_read(tmp_path: Path) -> None:
    out = tmp_path / "s.safetensors"
    result = CliRunner().invoke(app, ["distill", "--labels", str(tmp_path / "none.csv"), "--out", str(out),
                                      "--student-config", "mel_bands=1"])
    assert result.exit_code == 2, result.output
    assert "mel_bands" in result.output and "none.csv" not in result.output
    assert not any(tmp_path.iterdir())


def test_the_default_student_loads_and_agrees_with_the_teacher_on_calibration_clips() -> None:
    """Speakers 11 and 14 were held out of the student's training and validation: its model card reports
    CCC(student, teacher) 0.952 / 0.975 / 0.873 on all 124 clips; a replaced asset must not fall far below."""
    from edgeser.audio import load
    from edgeser.defaults import calibration_list_path, default_student_path

    model = models.load(default_student_path())
    assert model.arch == "wav2small" and models.count_parameters(model)[0] == 13_568
    assert model.cfg.head_hidden == 8 and model.cfg.head_softmax == 1  # the softmax head (model card)
    assert model.cfg.shape_stats == 1  # and the speech statistics
    extra = json.loads(models.read_metadata(default_student_path())["extra"])
    assert {"11", "14"}.isdisjoint(extra["val_speakers"])
    items = list_audio(calibration_list_path())
    x = np.stack([load(it.path)[:32_000] for it in items])
    with torch.no_grad():
        student = np.concatenate([model(torch.from_numpy(x[i : i + 32])).numpy() for i in range(0, len(x), 32)])
    arousal, dominance, valence = ccc(student, load_teacher("default")(x))
    assert arousal > 0.92 and dominance > 0.94 and valence > 0.83, (arousal, dominance, valence)


@pytest.mark.parametrize("damage", ["truncate", "empty", "not_a_state"])
def test_resume_from_a_damaged_state_is_one_input_error(tmp_path: Path, labels: Path, damage: str) -> None:
    out = tmp_path / "student.safetensors"
    distill(labels, out, config=_config(epochs=1))
    _, state = checkpoint_paths(out)
    if damage == "truncate":
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    elif damage == "empty":
        state.write_bytes(b"")
    else:
        torch.save({"config": json.dumps({"student": "wav2small"}), "model": torch.zeros(3)}, state)
    with pytest.raises(InputError) as err:
        distill(labels, out, config=_config(epochs=2), resume=True)
    assert err.value.path == state and "\n" not in err.value.message
    assert ("truncated or not a checkpoint" if damage != "not_a_state" else "not a training state") in str(err.value)


_NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only machine's errors")


@_NO_CUDA
@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--device", "cuda"], "--device cuda: no CUDA device is available here"),
        (["--device", "cuda:1"], "--device cuda:1: no CUDA device is available here"),
        (["--device", "cuda", "--precision", "fp16"], "--device cuda: no CUDA device is available here"),
        (["--precision", "bf16"], "--precision bf16 needs a CUDA device"),
        (["--device", "cuda", "--nproc", "2"], "--device cuda: no CUDA device is available here"),
        (["--device", "gpu"], "--device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        (["--precision", "fp8"], "--precision must be one of fp32, bf16, fp16"),
    ],
)
def test_cli_distill_on_a_device_this_machine_lacks_is_one_line(
    tmp_path: Path, labels: Path, options: list[str], says: str
) -> None:
    out = tmp_path / "out" / "s.safetensors"
    result = CliRunner().invoke(app, ["distill", "--labels", str(labels), "--out", str(out), "--epochs", "1",
                                      "--student-config", "channels=4", *options])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and says in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not out.parent.exists()


def test_a_cpu_run_records_where_it_trained(tmp_path: Path, labels: Path) -> None:
    out = tmp_path / "s.safetensors"
    result = distill(labels, out, config=_config(epochs=1), device="cpu")
    assert (result.rank, result.world_size) == (0, 1)
    extra = json.loads(models.read_metadata(out)["extra"])
    assert (extra["device"], extra["precision"], extra["processes"]) == ("cpu", "fp32", 1)
    assert torch.load(checkpoint_paths(out)[1], weights_only=True)["world_size"] == 1


@pytest.mark.parametrize(("windows", "size"), [(7, 1), (7, 2), (8, 2), (10, 3), (2, 4)])
def test_each_rank_gets_the_shard_a_distributed_sampler_gives_it(windows: int, size: int) -> None:
    from torch.utils.data.distributed import DistributedSampler

    from edgeser.distill.ddp import World, shard, shard_length

    order = np.random.default_rng(windows).permutation(windows)
    shards = [shard(order, World(rank, size, rank)) for rank in range(size)]
    for rank, mine in enumerate(shards):
        sampler = DistributedSampler(range(windows), num_replicas=size, rank=rank, shuffle=False)
        assert mine.tolist() == order[list(sampler)].tolist()
        assert len(mine) == shard_length(windows, World(rank, size, rank)) == len(sampler)
    assert set(np.concatenate(shards).tolist()) == set(order.tolist())
    assert shard(order, World()) is order  # one process: today's order, untouched


def test_the_run_is_read_from_torchruns_environment() -> None:
    from edgeser.distill.ddp import World, world_from_env

    assert world_from_env({}) == World(0, 1, 0)
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}
    world = world_from_env(env)
    assert world == World(3, 4, 1) and not world.main and world.distributed
    with pytest.raises(InputError, match="MASTER_ADDR and MASTER_PORT not set"):
        world_from_env({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(InputError, match="RANK=2, LOCAL_RANK=2 and WORLD_SIZE=2"):
        world_from_env({**env, "RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "2"})
    with pytest.raises(InputError, match="WORLD_SIZE must be an integer, got 'two'"):
        world_from_env({**env, "WORLD_SIZE": "two"})


def test_nproc_under_torchrun_is_refused(tmp_path: Path, labels: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    args = ["distill", "--labels", str(labels), "--out", str(tmp_path / "s.safetensors"), "--epochs", "1"]
    nested = CliRunner().invoke(app, [*args, "--nproc", "2"])
    assert nested.exit_code == 2 and "leave out --nproc under torchrun" in nested.stderr, nested.output
    lost = CliRunner().invoke(app, args)  # torchrun's variables, half of them
    assert lost.exit_code == 2 and "MASTER_ADDR and MASTER_PORT not set" in lost.stderr, lost.output
    assert not any(tmp_path.iterdir())


def test_each_rank_resumes_its_own_random_state() -> None:
    import edgeser.distill.checkpoint as module
    from edgeser.distill.ddp import World
    from edgeser.distill.run import _new_run

    def state_of(run: object) -> str:
        return json.dumps(run.aug.rng.bit_generator.state)  # type: ignore[attr-defined]

    config = _config(epochs=4)
    runs = [_new_run(config, 3, world=World(rank, 3, rank)) for rank in range(3)]
    assert len({state_of(r) for r in runs}) == 3  # seed + rank: each rank augments its own way
    for r in runs:
        r.aug.rng.random(5 + r.world.rank)
    saved = {"epoch": 2, "augment_rng": state_of(runs[0]), "torch_rng": torch.get_rng_state(),
             "ranks": [module._rank_state(r) for r in runs]}
    for rank in range(3):
        fresh = _new_run(config, 3, world=World(rank, 3, rank))
        module._resume_rank_state(fresh, saved, config)
        assert state_of(fresh) == state_of(runs[rank])
    other = _new_run(config, 3, world=World(1, 2, 1))  # the saved run had 3 processes, this one 2
    module._resume_rank_state(other, saved, config)
    assert state_of(other) == json.dumps(np.random.default_rng([config.seed, 1, 2]).bit_generator.state)
    first = _new_run(config, 3, world=World(0, 2, 0))
    module._resume_rank_state(first, saved, config)
    assert state_of(first) == state_of(runs[0])  # rank 0 takes the saved run's rank 0 state
