import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from edgeser import models
from edgeser.errors import InputError
from edgeser.runtime.frontend import logmel, mel_filterbank

PUBLISHED_KEYS = {
    "vgg7.l1.conv.weight", "vgg7.l1.norm.weight", "vgg7.l1.norm.bias", "vgg7.l1.norm.running_mean",
    "vgg7.l1.norm.running_var", "vgg7.l7.conv.weight", "vgg7.lin.weight", "vgg7.lin.bias", "vgg7.sof.weight",
    "vgg7.sof.bias", "vgg7.spectrogram_extractor.conv_real.weight", "vgg7.spectrogram_extractor.conv_imag.weight",
    "vgg7.logmel_extractor.melW", "adv.weight", "adv.bias",
}


@pytest.mark.parametrize("name,trainable,frozen", [("wav2small", 10_806, 4_224), ("wav2small.wide", 64_291, 16_640)])
def test_parameter_counts(name, trainable, frozen):
    assert models.count_parameters(models.create_model(name)) == (trainable, frozen)


def test_head_hidden_adds_a_relu_layer_before_the_outputs(tmp_path):
    m = models.create_model("wav2small", head_hidden=16).eval()
    feature = 2 * 13 * 13
    assert models.count_parameters(m)[0] == 10_806 - (feature * 3 + 3) + (feature * 16 + 16) + (16 * 3 + 3)
    assert {"mlp.weight", "mlp.bias"} <= set(m.state_dict()) and m.adv.in_features == 16
    x = torch.randn(2, 16000) * 0.1
    with torch.no_grad():
        expected = m.adv(torch.relu(m.mlp(m.vgg7(x))))
        assert torch.equal(m(x), expected)
        m.mlp.bias.fill_(-1e3)  # every hidden unit off: the output is the last layer's bias alone
        assert torch.allclose(m(x), m.adv.bias.expand(2, 3))
        m.mlp.bias.zero_()
    back = models.load(models.save(m, tmp_path / "h.safetensors"))
    assert back.cfg.head_hidden == 16 and torch.equal(back(x), m(x))
    assert models.create_model("wav2small").mlp is None  # the published layout has no such layer


def test_head_softmax_makes_the_outputs_a_weighted_mean_of_learnt_rows(tmp_path):
    torch.manual_seed(0)
    m = models.create_model("wav2small", head_hidden=5, head_softmax=1).eval()
    assert models.count_parameters(m)[0] == models.count_parameters(models.create_model("wav2small", head_hidden=5))[0]
    rows = m.adv.weight.t()  # (5, 3): one A/D/V row per hidden unit, drawn in 0.2..0.8, no bias yet
    assert bool(((rows >= 0.2) & (rows <= 0.8)).all()) and not m.adv.bias.any()
    x = torch.randn(3, 16000) * 0.1
    with torch.no_grad():
        weights = m.mlp(m.vgg7(x)).softmax(1)
        assert torch.allclose(m(x), weights @ rows, atol=1e-6)
        lo, hi = rows.min(0).values, rows.max(0).values
        assert bool(((m(x) >= lo - 1e-6) & (m(x) <= hi + 1e-6)).all())
        m.mlp.bias[2] = 1e3  # one unit takes all the weight: the output is its row
        assert torch.allclose(m(x), rows[2].expand(3, 3), atol=1e-6)
    back = models.load(models.save(m, tmp_path / "s.safetensors"))
    assert back.cfg.head_softmax == 1 and torch.equal(back(x), m(x))
    relu = models.create_model("wav2small", head_hidden=5).eval()
    relu.load_state_dict(m.state_dict())  # the same keys and shapes: only the activation differs
    with torch.no_grad():
        assert not torch.allclose(relu(x), m(x))


def test_mel_bands_widen_the_pooled_map_not_the_convs(tmp_path):
    m = models.create_model("wav2small", n_fft=512, hop_length=256, mel_bands=64).eval()
    c, width = 13, 32  # 64 bands, halved by the max-pool
    x = torch.randn(2, 16000) * 0.1
    with torch.no_grad():
        assert m.vgg7.features(x).shape[-1] == 64
        assert m.vgg7(x).shape == (2, c * (width + c))  # the 13 x 32 map and its 13 x 13 Gram matrix
    assert m.adv.in_features == c * (width + c)
    published = models.count_parameters(models.create_model("wav2small"))[0]
    assert models.count_parameters(m)[0] == published + 3 * c * (width - c)  # only the head grows
    back = models.load(models.save(m, tmp_path / "m.safetensors"))
    assert back.cfg.n_mels == 64 and torch.equal(back(x), m(x))
    assert models.create_model("wav2small", mel_bands=0).cfg.n_mels == 26  # 0: twice the channels


def test_shape_stats_are_the_speech_frames_moments_of_the_spectral_shape(tmp_path):
    from edgeser.models.wav2small_head import SPEECH_DB, _db_of_sum, shape_stats

    rng = np.random.default_rng(0)
    mel = torch.from_numpy(rng.normal(0.0, 6.0, (1, 40, 26)).astype(np.float32))  # dB, (B, frames, bands)
    stats = shape_stats(mel)
    assert stats.shape == (1, 4 * 26)
    shape = mel - mel.mean(2, keepdim=True)
    torch.testing.assert_close(stats[:, :26], shape.mean(1), atol=0.05, rtol=0)  # every frame loud: plain moments
    torch.testing.assert_close(stats[:, 26:52], shape.std(1, unbiased=False), atol=0.05, rtol=0)
    delta = shape[:, 2:] - shape[:, :-2]
    torch.testing.assert_close(stats[:, 52:78], delta.mean(1), atol=0.05, rtol=0)
    torch.testing.assert_close(shape_stats(mel + 17.0), stats)  # loudness does not change the shape
    silence = torch.full((1, 30, 26), -100.0)  # zero padding after the log: far under the speech
    torch.testing.assert_close(shape_stats(torch.cat([mel, silence], 1)), stats, atol=1e-3, rtol=0)
    quiet = torch.cat([mel, mel - (SPEECH_DB + 20.0)], 1)  # a quieter copy of the clip counts for almost nothing
    torch.testing.assert_close(shape_stats(quiet)[:, :26], stats[:, :26], atol=1e-3, rtol=0)
    s = torch.linspace(1.0, 26.0, 500)
    assert float((_db_of_sum(s, 26) - 10.0 * torch.log10(s)).abs().max()) < 0.26


def test_shape_stats_widen_the_head_input_by_four_per_band(tmp_path):
    from edgeser.models.wav2small_head import shape_stats

    m = models.create_model("wav2small", n_fft=512, hop_length=256, head_hidden=8, head_softmax=1,
                            shape_stats=1).eval()
    plain = models.create_model("wav2small", n_fft=512, hop_length=256, head_hidden=8, head_softmax=1)
    assert m.cfg.hidden == plain.cfg.hidden + 4 * 26 and m.mlp.in_features == m.cfg.hidden
    # the embedded default's layout: 12,528 trainable + 8 head units x 104 + the batch norm's 2 x 104
    assert models.count_parameters(m)[0] == models.count_parameters(plain)[0] + 8 * 104 + 2 * 104 == 13_568
    assert {"vgg7.stats_norm.weight", "vgg7.stats_norm.running_var"} <= set(m.state_dict())
    x = torch.randn(2, 16000) * 0.1
    x[1, 8000:] = 0.0
    with torch.no_grad():
        mel = m.vgg7.features(x)
        feature = m.vgg7(x)
        assert torch.equal(feature[:, plain.cfg.hidden:], m.vgg7.stats_norm(shape_stats(mel[:, 0])))
        assert torch.equal(m(x), m.adv(m.mlp(feature).softmax(1)))
    back = models.load(models.save(m, tmp_path / "s.safetensors"))
    assert back.cfg.shape_stats == 1 and torch.equal(back(x), m(x))


@pytest.mark.parametrize("overrides", [{"head_hidden": -1}, {"channels": 0}, {"bogus": 1}, {"mel_bands": -2},
                                       {"mel_bands": 1}, {"mel_bands": 40}, {"head_softmax": 1},
                                       {"head_softmax": 2, "head_hidden": 4}, {"head_softmax": 1, "head_hidden": 1},
                                       {"shape_stats": 2}, {"shape_stats": -1}])
def test_bad_wav2small_hyper_parameters_raise_input_error(overrides):
    with pytest.raises(InputError):
        models.create_model("wav2small", **overrides)


@pytest.mark.parametrize("seconds", [0.5, 1.0, 2.7])
def test_forward_shapes(seconds):
    m = models.create_model("wav2small").eval()
    with torch.no_grad():
        y = m(torch.randn(2, int(16000 * seconds)))
    assert y.shape == (2, 3) and torch.isfinite(y).all()


def test_published_key_names():
    keys = set(models.create_model("wav2small").state_dict())
    assert PUBLISHED_KEYS <= keys
    assert all(k.startswith(("vgg7.", "adv.")) for k in keys)


def _published(tmp_path, model, drop=(), extra=None):
    state = {k: v.contiguous() for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked") and k not in drop}
    state.update(extra or {})
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    return path


def test_loads_published_layout_strictly(tmp_path):
    torch.manual_seed(0)
    m = models.create_model("wav2small").eval()
    for p in m.parameters():
        if p.requires_grad:
            p.data.normal_(0, 0.1)
    loaded = models.load(_published(tmp_path, m))
    x = torch.randn(1, 16000)
    with torch.no_grad():
        assert torch.equal(loaded(x), m(x))


def test_published_layout_with_wrong_keys_is_refused(tmp_path):
    m = models.create_model("wav2small")
    with pytest.raises(InputError, match="missing adv.bias"):
        models.load(_published(tmp_path, m, drop=("adv.bias",)))
    with pytest.raises(InputError, match="unexpected cls.weight"):
        models.load(_published(tmp_path, m, extra={"cls.weight": torch.zeros(2)}))


def test_save_load_round_trip_keeps_config_and_extra(tmp_path):
    m = models.create_model("wav2small.wide").eval()
    path = models.save(m, tmp_path / "s.safetensors", extra={"note": "x"})
    meta = models.read_metadata(path)
    assert meta["arch"] == "wav2small" and json.loads(meta["config"])["channels"] == 32
    assert json.loads(meta["extra"]) == {"note": "x"}
    back = models.load(path)
    x = torch.randn(1, 8000)
    with torch.no_grad():
        assert torch.allclose(back(x), m(x))


def test_checkpoints_leave_out_what_the_config_rebuilds(tmp_path):
    """A 512-point STFT's kernels are 1 MB of a 1.1 MB checkpoint: they, and the mel bank, are rebuilt on load."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    torch.manual_seed(0)
    m = models.create_model("wav2small", n_fft=512, hop_length=256).eval()
    path = models.save(m, tmp_path / "s.safetensors")
    assert path.stat().st_size < 100_000
    with safe_open(str(path), framework="pt") as f:
        stored = set(f.keys())
        meta = f.metadata()
    assert "vgg7.spectrogram_extractor.conv_real.weight" not in stored and "adv.weight" in stored
    assert "vgg7.spectrogram_extractor.conv_real.weight" in json.loads(meta["derived"])
    back = models.load(path)
    for key, value in m.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    # changed frozen kernels are not "derived": they are stored and come back as saved
    with torch.no_grad():
        m.vgg7.spectrogram_extractor.conv_real.weight.mul_(0.5)
    again = models.load(models.save(m, tmp_path / "changed.safetensors"))
    assert torch.equal(again.vgg7.spectrogram_extractor.conv_real.weight, m.vgg7.spectrogram_extractor.conv_real.weight)
    # metadata may not declare trained weights derivable
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    bad = tmp_path / "bad.safetensors"
    save_file({k: v for k, v in tensors.items() if k != "adv.weight"}, str(bad),
              metadata={**meta, "derived": json.dumps(["adv.weight"])})
    with pytest.raises(InputError, match="bad.safetensors: corrupt edgeser metadata: 'derived' lists trained weights"):
        models.load(bad)


def test_corrupt_and_unknown(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 20)
    with pytest.raises(InputError, match="not a readable safetensors"):
        models.load(bad)
    with pytest.raises(InputError, match="not found"):
        models.load(tmp_path / "none.safetensors")
    with pytest.raises(InputError, match="unknown student"):
        models.create_model("wav3big")


def test_numpy_frontend_matches_torch():
    m = models.create_model("wav2small").eval()
    x = np.random.default_rng(0).standard_normal((2, 16000)).astype(np.float32) * 0.1
    with torch.no_grad():
        ref = m.vgg7.features(torch.from_numpy(x)).numpy()
    got = logmel(x)
    assert got.shape == ref.shape == (2, 1, 499, 26)
    assert np.abs(got - ref).max() < 1e-3  # dB; float32 summation order differs


def test_mel_filters_have_unit_area_and_rising_centres():
    n_fft = 4096  # fine bins, so each triangle is sampled well
    w = mel_filterbank(16000, n_fft, 40)
    bin_hz = 16000 / n_fft
    area = w.sum(0) * bin_hz
    assert np.allclose(area, 1.0, atol=0.02)  # Slaney normalisation: area 1 in Hz
    centres = w.argmax(0)
    assert np.all(np.diff(centres) > 0)
    coarse = mel_filterbank(16000, 64, 26)
    assert coarse.shape == (33, 26) and coarse.flags["C_CONTIGUOUS"]


def _crafted(tmp_path, **config):
    """A tiny student's checkpoint whose metadata claims another config (its tensors unchanged)."""
    from safetensors import safe_open

    src = models.save(models.create_model("wav2small", channels=4), tmp_path / "src.safetensors")
    with safe_open(str(src), framework="pt") as f:
        meta, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    meta["config"] = json.dumps({**json.loads(meta["config"]), **config})
    path = tmp_path / "crafted.safetensors"
    save_file(tensors, str(path), metadata=meta)
    return path


@pytest.mark.parametrize(("config", "message"), [
    ({"channels": 10**7}, "channels must be at most 512, got 10000000"),
    ({"n_fft": 2**40}, "n_fft must be at most 4096"),
    ({"head_hidden": 10**9}, "head_hidden must be at most 4096"),
    ({"channels": float("inf")}, "channels must be at most 512, got inf"),
])
def test_a_checkpoint_claiming_an_absurd_size_is_refused_before_building(tmp_path, config, message):
    path = _crafted(tmp_path, **config)
    with pytest.raises(InputError, match=message) as err:
        models.load(path)
    assert err.value.path == path


def test_a_checkpoint_config_must_build_the_tensors_the_file_holds(tmp_path):
    path = _crafted(tmp_path, channels=400)
    with pytest.raises(InputError, match=r"crafted.safetensors: its config needs [\d,]+ values, the file "
                                         r"holds [\d,]+ \(vgg7.l1.conv.weight: \(4, 1, 3, 3\) in the file, "
                                         r"\(400, 1, 3, 3\) from the config"):
        models.load(path)
