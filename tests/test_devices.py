"""Device and precision requests resolve the same way in every command; CUDA on a CPU-only machine is one line."""

import pytest

from edgeser.devices import autocast, onnx_providers, resolve
from edgeser.errors import InputError

torch = pytest.importorskip("torch")
HAS_CUDA = torch.cuda.is_available()


def test_cpu_and_auto():
    assert resolve("cpu").device == "cpu"
    assert resolve("auto").device == ("cuda:0" if HAS_CUDA else "cpu")
    assert resolve(" CPU ").device == "cpu"
    with autocast(resolve("cpu")):
        assert not torch.is_autocast_enabled()
    assert onnx_providers(resolve("cpu")) == ["CPUExecutionProvider"]


@pytest.mark.parametrize("device,words", [("gpu", "must be auto, cpu, cuda or cuda:N"), ("cuda:x", "must be"),
                                          ("cuda:-1", "must be"), ("", "must be")])
def test_unknown_devices_are_one_line(device, words):
    with pytest.raises(InputError, match=words) as err:
        resolve(device)
    assert err.value.exit_code == 2 and "\n" not in err.value.message


@pytest.mark.skipif(HAS_CUDA, reason="checks the message of a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_one_clear_line(device):
    with pytest.raises(InputError, match="no CUDA device is available here") as err:
        resolve(device)
    assert "\n" not in err.value.message


def test_reduced_precision_needs_cuda():
    with pytest.raises(InputError, match="needs a CUDA device"):
        resolve("cpu", "bf16")
    with pytest.raises(InputError, match="--precision must be one of fp32, bf16, fp16"):
        resolve("cpu", "int4")
