"""Transformers teachers (audEERING wav2vec2, Odyssey WavLM) and ensembles, on tiny models built here.

Each layout is checked against a reference module written in this file from the publishers' own
description (the audEERING model card's EmotionModel; the MSP-Podcast challenge's pooling and head),
saved with the published key names, and loaded back through ``load_teacher``.
"""

from __future__ import annotations

import fractions
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.torch import save_file  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from edgeser.errors import InputError  # noqa: E402
from edgeser.teachers import Teacher, load_teacher  # noqa: E402
from edgeser.teachers.ensemble import Ensemble  # noqa: E402

RATE = 16_000
ORDER = {"0": "arousal", "1": "dominance", "2": "valence"}


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _clips(n: int = 3, samples: int = 4000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / RATE
    tone = np.sin(2 * np.pi * rng.uniform(100, 400, (n, 1)) * t)
    return (0.3 * tone + 0.05 * rng.standard_normal((n, samples)) + 0.01).astype(np.float32)


def _save(folder: Path, config: dict, state: dict[str, torch.Tensor], *, bin_file: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    state = {k: v.detach().clone().contiguous() for k, v in state.items()}
    if bin_file:
        torch.save(state, folder / "pytorch_model.bin")
    else:
        save_file(state, str(folder / "model.safetensors"))
    return folder


# --------------------------------------------------------------------------- audEERING reference


class RegressionHead(nn.Module):
    """The model card's head: dropout, dense, tanh, dropout, out_proj."""

    def __init__(self, config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.final_dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, x):
        return self.out_proj(self.dropout(torch.tanh(self.dense(self.dropout(x)))))


class EmotionModel(nn.Module):
    """The model card's EmotionModel: wav2vec2, mean of the last hidden states, regression head."""

    def __init__(self, config) -> None:
        super().__init__()
        self.wav2vec2 = transformers.Wav2Vec2Model(config)
        self.classifier = RegressionHead(config)

    def forward(self, x):
        return self.classifier(self.wav2vec2(x)[0].mean(dim=1))


def _tiny_w2v2_config(**extra) -> transformers.Wav2Vec2Config:
    return transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16), conv_kernel=(10, 4), conv_stride=(5, 4), num_feat_extract_layers=2,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, feat_extract_norm="layer",
        do_stable_layer_norm=True, conv_bias=True, vocab_size=None, id2label=dict(ORDER), **extra,
    )


def _audeering_reference(seed: int = 0) -> tuple[EmotionModel, dict]:
    torch.manual_seed(seed)
    config = _tiny_w2v2_config()
    model = EmotionModel(config).eval()
    with torch.no_grad():  # make the head matter: default init leaves it near zero
        for p in model.classifier.parameters():
            p.normal_(0, 0.3)
    return model, config.to_dict()


def _audeering_expected(model: EmotionModel, clips: np.ndarray) -> np.ndarray:
    extractor = transformers.Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=RATE, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )
    x = extractor(list(clips), sampling_rate=RATE, return_tensors="np")["input_values"]
    with torch.no_grad():
        return model(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()


@pytest.fixture(scope="module")
def audeering(tmp_path_factory) -> tuple[Path, EmotionModel]:
    model, config = _audeering_reference()
    return _save(tmp_path_factory.mktemp("audeering"), config, model.state_dict()), model


# --------------------------------------------------------------------------- Odyssey reference


class AttentiveStatisticsPooling(nn.Module):
    """The challenge repository's pooling: frame count from the mask at 20 ms per frame."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.sap_linear = nn.Linear(size, size)
        self.attention = nn.Parameter(torch.randn(size, 1))

    def forward(self, xs, mask):
        lens = (torch.div(mask.sum(dim=1) - 1, 16000 * 0.02, rounding_mode="floor") + 1).int().tolist()
        pooled = []
        for x, n in zip(xs, lens, strict=True):
            x = x[:n].unsqueeze(0)
            w = torch.matmul(torch.tanh(self.sap_linear(x)), self.attention).squeeze(dim=2)
            w = F.softmax(w, dim=1).view(x.size(0), x.size(1), 1)
            mu = torch.sum(x * w, dim=1)
            rh = torch.sqrt((torch.sum((x**2) * w, dim=1) - mu**2).clamp(min=1e-5))
            pooled.append(torch.cat((mu, rh), 1).squeeze(0))
        return torch.stack(pooled)


class EmotionRegression(nn.Module):
    """The challenge repository's head: (Linear, LayerNorm, ReLU, Dropout) blocks, then Linear."""

    def __init__(self, inp: int, hidden: int, layers: int, out: int, p: float = 0.5) -> None:
        super().__init__()
        dims = [inp] + [hidden] * layers
        self.fc = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.LayerNorm(b), nn.ReLU(), nn.Dropout(p))
            for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        self.out = nn.Sequential(nn.Linear(hidden, out))
        self.inp_drop = nn.Dropout(p)

    def forward(self, x):
        h = self.inp_drop(x)
        for fc in self.fc:
            h = fc(h)
        return self.out(h)


class OdysseySER(nn.Module):
    def __init__(self, ssl_config, hidden: int, layers: int) -> None:
        super().__init__()
        self.ssl_model = transformers.WavLMModel(ssl_config)
        self.pool_model = AttentiveStatisticsPooling(hidden)
        self.ser_model = EmotionRegression(2 * hidden, hidden, layers, 3)

    def forward(self, x, mask):
        h = self.ssl_model(x, attention_mask=mask).last_hidden_state
        return self.ser_model(self.pool_model(h, mask))


ODYSSEY_MEAN, ODYSSEY_STD = 0.002, 0.08


def _odyssey_reference(layers: int = 2, seed: int = 1) -> tuple[OdysseySER, dict]:
    torch.manual_seed(seed)
    ssl = transformers.WavLMConfig(  # WavLM-Large's shape, shrunk; the rest as published
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(8,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_bias=False, feat_extract_norm="layer", do_stable_layer_norm=True, layer_norm_eps=1e-5,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, num_buckets=16, max_bucket_distance=800,
    )
    model = OdysseySER(ssl, 32, layers).eval()
    config = {
        "model_type": "ser", "ssl_type": "microsoft/wavlm-large", "hidden_size": 32,
        "classifier_hidden_layers": layers, "num_classes": 3, "classifier_dropout_prob": 0.5,
        "mean": ODYSSEY_MEAN, "std": ODYSSEY_STD, "sampling_rate": RATE, "id2label": dict(ORDER),
    }
    return model, config


def _odyssey_expected(model: OdysseySER, clips: np.ndarray) -> np.ndarray:
    x = torch.from_numpy((clips - ODYSSEY_MEAN) / (ODYSSEY_STD + 1e-6)).float()
    with torch.no_grad():
        return model(x, torch.ones(x.shape)).numpy()


@pytest.fixture(scope="module")
def odyssey(tmp_path_factory) -> tuple[Path, OdysseySER]:
    model, config = _odyssey_reference()
    return _save(tmp_path_factory.mktemp("odyssey"), config, model.state_dict()), model


# --------------------------------------------------------------------------- tests: loading and parity


def test_audeering_matches_reference(audeering):
    folder, model = audeering
    teacher = load_teacher(str(folder))
    clips = _clips(n=3)
    out = teacher(clips)
    assert isinstance(teacher, Teacher)
    assert out.shape == (3, 3) and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_allclose(out, _audeering_expected(model, clips), rtol=1e-4, atol=1e-5)
    assert teacher.sample_rate == RATE
    assert teacher.name == f"audeering-w2v2-dim:{folder.name}"
    assert teacher.identity.startswith("hf-audeering-w2v2-dim-")
    assert torch.get_num_threads() == 1


# The reference passes the baseline's all-ones attention mask, which torch warns about; the teacher does not.
@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask:UserWarning")
def test_odyssey_matches_reference(odyssey):
    folder, model = odyssey
    teacher = load_teacher(folder, threads=2)
    clips = _clips(n=2, samples=8000, seed=3)
    out = teacher(clips)
    assert out.shape == (2, 3) and np.isfinite(out).all()
    np.testing.assert_allclose(out, _odyssey_expected(model, clips), rtol=1e-4, atol=1e-5)
    assert teacher.identity.startswith("hf-odyssey-wavlm-dim-")
    assert torch.get_num_threads() == 2


def test_large_batches_run_in_slices(audeering):
    folder, model = audeering
    clips = _clips(n=11, samples=2000, seed=5)
    out = load_teacher(folder)(clips)
    np.testing.assert_allclose(out, _audeering_expected(model, clips), rtol=1e-4, atol=1e-5)


def test_pytorch_bin_with_legacy_weight_norm_names(tmp_path, audeering):
    folder, model = audeering
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    renames = {"parametrizations.weight.original0": "weight_g",
               "parametrizations.weight.original1": "weight_v"}
    legacy = {}
    for key, value in model.state_dict().items():
        for new, old in renames.items():
            key = key.replace(new, old)
        legacy[key] = value
    assert any(k.endswith("weight_g") for k in legacy)
    old = _save(tmp_path / "old", config, legacy, bin_file=True)
    clips = _clips()
    np.testing.assert_allclose(load_teacher(old)(clips), load_teacher(folder)(clips), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("make", [_audeering_reference, _odyssey_reference], ids=["audeering", "odyssey"])
def test_id2label_reorders_to_adv(tmp_path, make):
    model, config = make()
    plain = _save(tmp_path / "plain", config, model.state_dict())
    config = {**config, "id2label": {"0": "Valence", "1": "Arousal", "2": "Dominance"}}
    shuffled = _save(tmp_path / "shuffled", config, model.state_dict())
    clips = _clips(samples=8000)
    raw = load_teacher(plain)(clips)  # columns as the head emits them
    np.testing.assert_allclose(load_teacher(shuffled)(clips), raw[:, [1, 2, 0]], rtol=1e-6)


def test_identity_follows_the_weights(tmp_path, audeering):
    folder, model = audeering
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    assert load_teacher(copy).identity == load_teacher(folder).identity
    state = model.state_dict()
    state["classifier.out_proj.bias"] = state["classifier.out_proj.bias"] + 1.0
    changed = _save(tmp_path / "changed", json.loads((folder / "config.json").read_text()), state)
    assert load_teacher(changed).identity != load_teacher(folder).identity


# --------------------------------------------------------------------------- tests: errors


def _copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "teacher"
    shutil.copytree(folder, target)
    return target


def test_missing_config_names_it(tmp_path, audeering):
    folder = _copy(audeering[0], tmp_path)
    (folder / "config.json").unlink()
    from edgeser.teachers.hf import load  # load_teacher would now treat the folder as an ONNX one

    with pytest.raises(InputError, match="config.json not found") as err:
        load(folder)
    assert str(folder / "config.json") in str(err.value)


def test_missing_weights_names_the_folder(tmp_path, audeering):
    folder = _copy(audeering[0], tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(InputError, match="model.safetensors or pytorch_model.bin") as err:
        load_teacher(folder)
    assert str(folder) in str(err.value)


@pytest.mark.parametrize("name", ["model.safetensors", "pytorch_model.bin"])
def test_corrupt_weights_name_the_file(tmp_path, audeering, name):
    folder = _copy(audeering[0], tmp_path)
    (folder / "model.safetensors").unlink()
    (folder / name).write_bytes(b"\x00garbage" * 64)
    with pytest.raises(InputError, match="corrupt or unsupported weights") as err:
        load_teacher(folder)
    assert str(folder / name) in str(err.value)


def test_pickled_objects_are_refused(tmp_path, audeering):
    folder = _copy(audeering[0], tmp_path)
    (folder / "model.safetensors").unlink()
    torch.save({"weight": torch.zeros(1), "payload": fractions.Fraction(1, 3)}, folder / "pytorch_model.bin")
    with pytest.raises(InputError, match="pytorch_model.bin"):
        load_teacher(folder)


def test_corrupt_config_names_it(tmp_path, audeering):
    folder = _copy(audeering[0], tmp_path)
    (folder / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="unreadable config.json") as err:
        load_teacher(folder)
    assert str(folder / "config.json") in str(err.value)


def test_wrong_keys_are_listed(tmp_path, audeering):
    folder, model = audeering
    state = dict(model.state_dict())
    state["classifier.extra.weight"] = state.pop("classifier.dense.weight")
    bad = _save(tmp_path / "bad", json.loads((folder / "config.json").read_text()), state)
    with pytest.raises(InputError) as err:
        load_teacher(bad)
    message = str(err.value)
    assert str(bad / "model.safetensors") in message
    assert "missing 1 key(s) (classifier.dense.weight)" in message
    assert "unexpected 1 key(s) (classifier.extra.weight)" in message
    assert "\n" not in message


def test_wrong_shapes_are_listed(tmp_path, odyssey):
    folder, model = odyssey
    state = dict(model.state_dict())
    state["pool_model.attention"] = torch.zeros(5, 1)
    bad = _save(tmp_path / "bad", json.loads((folder / "config.json").read_text()), state)
    with pytest.raises(InputError, match=r"wrong shape for 1 key\(s\) \(pool_model.attention\)"):
        load_teacher(bad)


def test_unknown_layout_is_refused(tmp_path):
    folder = _save(tmp_path / "other", {"model_type": "bert"}, {"encoder.weight": torch.zeros(2, 2)})
    with pytest.raises(InputError, match="not a supported transformers teacher"):
        load_teacher(folder)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ssl_type": "microsoft/wavlm-base-plus"}, "ssl_type"),
        ({"mean": None}, "'mean'"),
        ({"std": 0.0}, "positive"),
        ({"id2label": {"0": "happy", "1": "sad", "2": "angry"}}, "id2label names"),
    ],
)
def test_odyssey_config_is_checked(tmp_path, odyssey, change, message):
    folder, model = odyssey
    config = {**json.loads((folder / "config.json").read_text()), **change}
    bad = _save(tmp_path / "bad", config, model.state_dict())
    with pytest.raises(InputError, match=message) as err:
        load_teacher(bad)
    assert str(bad) in str(err.value)


def test_short_clips_and_bad_shapes_are_value_errors(audeering):
    teacher = load_teacher(audeering[0])
    with pytest.raises(ValueError, match="too short"):
        teacher(np.zeros((1, 10), np.float32))
    with pytest.raises(ValueError, match=r"\(N, T\)"):
        teacher(np.zeros(4000, np.float32))


def test_missing_transformers_names_the_extra(monkeypatch, audeering):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"pip install 'edgeser\[teachers\]'"):
        load_teacher(audeering[0])


# --------------------------------------------------------------------------- tests: ensembles


class _Constant:
    def __init__(self, name: str, value: list[float], sample_rate: int = RATE) -> None:
        self.name, self.identity, self.sample_rate = name, f"id-{name}", sample_rate
        self.value = np.asarray(value, np.float32)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.tile(self.value, (len(batch), 1))


def test_ensemble_of_two_folders_is_their_mean(tmp_path):
    one, config = _audeering_reference(seed=10)
    two, _ = _audeering_reference(seed=11)
    a, b = _save(tmp_path / "a", config, one.state_dict()), _save(tmp_path / "b", config, two.state_dict())
    clips = _clips()
    ensemble = load_teacher(f"{a}+{b}")
    first, second = load_teacher(a), load_teacher(b)
    assert isinstance(ensemble, Ensemble) and isinstance(ensemble, Teacher)
    out = ensemble(clips)
    assert out.shape == (3, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, (first(clips) + second(clips)) / 2, rtol=1e-6, atol=1e-7)
    assert ensemble.name == f"{first.name}+{second.name}"
    assert ensemble.identity != load_teacher(f"{b}+{a}").identity
    assert ensemble.sample_rate == RATE


def test_ensemble_weights_and_identity():
    low, high = _Constant("low", [0.0, 0.2, 0.4]), _Constant("high", [1.0, 0.6, 0.8])
    batch = np.zeros((2, 100), np.float32)
    equal, weighted = Ensemble([low, high]), Ensemble([low, high], weights=[3, 1])
    np.testing.assert_allclose(weighted(batch), [[0.25, 0.3, 0.5]] * 2, rtol=1e-6)
    np.testing.assert_allclose(equal(batch), [[0.5, 0.4, 0.6]] * 2, rtol=1e-6)
    assert equal.identity == Ensemble([low, high]).identity
    assert equal.identity != weighted.identity
    assert equal.identity == Ensemble([low, high], weights=[2, 2]).identity
    assert weighted.weights == [0.75, 0.25]


@pytest.mark.parametrize(
    ("teachers", "weights", "message"),
    [
        ([], None, "at least one"),
        ([_Constant("a", [0, 0, 0]), _Constant("b", [0, 0, 0], sample_rate=8000)], None, "sample rate"),
        ([_Constant("a", [0, 0, 0])] * 2, [1.0], "2 teachers"),
        ([_Constant("a", [0, 0, 0])] * 2, [0.0, 0.0], "not all zero"),
        ([_Constant("a", [0, 0, 0])] * 2, [1.0, -1.0], "non-negative"),
    ],
)
def test_ensemble_rejects_bad_input(teachers, weights, message):
    with pytest.raises(InputError, match=message):
        Ensemble(teachers, weights=weights)


# --------------------------------------------------------------------------- tests: devices and padding


def _padded(clips: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(c) for c in clips)
    batch = np.zeros((len(clips), width), np.float32)
    for i, c in enumerate(clips):
        batch[i, : len(c)] = c
    return batch, np.array([len(c) for c in clips])


@pytest.mark.parametrize("fixture", ["audeering", "odyssey"])
def test_a_padded_clip_gets_the_label_it_gets_alone(request, fixture):
    teacher = load_teacher(request.getfixturevalue(fixture)[0])
    assert teacher.padding_aware
    full = _clips(n=2, samples=8000, seed=7)
    clips = [full[0], full[1][:3100], full[1][:5000]]  # 0.19 s and 0.31 s of a 0.5 s batch
    batch, lengths = _padded(clips)
    alone = np.concatenate([teacher(c[None]) for c in clips])
    np.testing.assert_allclose(teacher(batch, lengths), alone, rtol=1e-4, atol=1e-5)
    unmasked = teacher(batch)  # the zeros count as audio without the lengths
    assert np.abs(unmasked[1:] - alone[1:]).max() > 1e-3
    np.testing.assert_allclose(unmasked[0], alone[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(teacher(batch, np.full(3, batch.shape[1])), unmasked)  # nothing padded


def test_a_group_normalised_encoder_is_not_padding_aware(tmp_path):
    torch.manual_seed(0)
    config = _tiny_w2v2_config()
    config.feat_extract_norm, config.do_stable_layer_norm = "group", False
    model = EmotionModel(config).eval()
    folder = _save(tmp_path / "group", config.to_dict(), model.state_dict())
    teacher = load_teacher(folder)
    batch, lengths = _padded([_clips(n=1, samples=4000)[0], _clips(n=1, samples=2000, seed=2)[0]])
    assert not teacher.padding_aware
    np.testing.assert_array_equal(teacher(batch, lengths), teacher(batch))  # the padding is part of the clip


def test_a_clip_shorter_than_the_encoder_window_counts_as_that_long(audeering):
    teacher = load_teacher(audeering[0])
    batch = _clips(n=2, samples=4000, seed=9)
    batch[1, 10:] = 0
    at_window = np.array([4000, teacher.min_samples])
    np.testing.assert_allclose(teacher(batch, np.array([4000, 10])), teacher(batch, at_window), rtol=1e-6)
    with pytest.raises(ValueError, match="one positive count per clip"):
        teacher(batch, np.array([4000]))


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_on_a_machine_without_it_is_one_input_error(audeering, device):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(InputError, match="no CUDA device is available here") as err:
        load_teacher(audeering[0], device=device)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="needs a CUDA device"):
        load_teacher(audeering[0], device="auto", precision="bf16")


def test_the_identity_names_a_reduced_precision_but_not_the_device(audeering):
    from edgeser.devices import Placement
    from edgeser.teachers import precision_identity

    cpu = load_teacher(audeering[0], device="cpu")
    assert load_teacher(audeering[0], device="auto").identity == cpu.identity
    assert precision_identity(cpu.identity, "fp32") == cpu.identity
    assert precision_identity(cpu.identity, "bf16") == cpu.identity + "-bf16"
    # A placement that says bf16 (as a CUDA machine resolves it) marks the labels; on the CPU autocast is off.
    marked = load_teacher(audeering[0], placement=Placement("cpu", "bf16"))
    assert marked.identity == cpu.identity + "-bf16"
    np.testing.assert_allclose(marked(_clips()), cpu(_clips()), rtol=1e-6)


def test_an_onnx_teacher_refuses_a_reduced_precision(tmp_path):
    from edgeser.devices import Placement

    with pytest.raises(InputError, match="precision of its model"):
        load_teacher("default", placement=Placement("cpu", "fp16"))
