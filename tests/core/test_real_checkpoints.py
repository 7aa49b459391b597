"""Checkpoints made by other people: silero-vad's TorchScript and safetensors, lpips' pickles."""
import json

import pytest
import torch

from app.core.formats import load_document
from app.core.stats import compute_stats
from tests.cli import run_main
from tests.third_party import wheel_file


@pytest.fixture(scope="module")
def silero_jit():
    return wheel_file("silero-vad==6.2.3", "silero_vad/data/silero_vad.jit")


@pytest.fixture(scope="module")
def silero_safetensors():
    return wheel_file("silero-vad==6.2.3", "silero_vad/data/silero_vad_16k.safetensors")


@pytest.fixture(scope="module")
def lpips_alex():
    return wheel_file("lpips==0.1.4", "lpips/weights/v0.1/alex.pth")


def test_silero_torchscript_tree(silero_jit):
    doc = load_document(str(silero_jit))
    assert doc.format == "torchscript"
    top = doc.root.children[0]
    assert top.type_name == "VADRNNJIT" and top.kind == "module"
    conv = doc.entry("_model.encoder.0.reparam_conv.weight")
    assert conv.kind == "parameter" and conv.shape == (128, 129, 3)
    assert doc.entry("_model.stft.forward_basis_buffer").kind == "buffer"
    ref = torch.jit.load(str(silero_jit), map_location="cpu")
    sd = ref.state_dict()
    assert set(sd) <= set(doc.names())
    for name, t in sd.items():
        assert torch.equal(doc.tensor(name), t), name


def test_silero_safetensors_lazy(silero_safetensors):
    doc = load_document(str(silero_safetensors))
    assert doc.format == "safetensors" and len(doc.tensors) > 5
    assert not any(e.is_loaded for e in doc.tensors.values())
    name = doc.names()[0]
    s = compute_stats(doc.tensor(name))
    assert s.numel == doc.entry(name).numel and s.nan == 0


def test_lpips_pickle_via_cli(lpips_alex):
    proc = run_main("inspect", lpips_alex, "--json", "--stats")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["format"] == "torch"
    assert [t["name"] for t in out["tensors"]] == [f"lin{i}.model.1.weight" for i in range(5)]
    assert out["tensors"][0]["shape"] == [1, 64, 1, 1]
    assert all(t["stats"]["min"] >= 0 for t in out["tensors"])  # lpips' linear layers are non-negative
