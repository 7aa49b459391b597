"""``Document.from_module``: a live model's own tensors, never copies, on their own device."""
import pytest
import torch
from torch import nn

from app.core.model.document import Document


class Shared(nn.Module):
    """A layer used at two places, a frozen parameter, a buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 4), nn.Tanh())
        self.decoder = nn.Sequential(self.encoder[0], nn.BatchNorm1d(4))
        self.head = nn.Linear(4, 2)
        self.head.bias.requires_grad_(False)

    def forward(self, x):
        return self.head(self.decoder(self.encoder(x)))


def make(device="cpu"):
    torch.manual_seed(0)
    return Shared().to(device)


def test_tensors_are_the_models_own_parameters_with_an_optimizer():
    model = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    doc = Document.from_module(model)
    assert doc.module is model
    for name, p in model.named_parameters(remove_duplicate=False):
        assert doc.tensor(name) is p and doc.entry(name).kind == "parameter", name
    for name, b in model.named_buffers(remove_duplicate=False):
        assert doc.tensor(name) is b and doc.entry(name).kind == "buffer", name
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    assert {id(e.tensor()) for e in doc.unique_entries() if e.kind == "parameter"} == held

    with torch.no_grad():  # an edit through the document is what the optimizer steps on
        doc.tensor("decoder.0.weight").fill_(0.5)
    assert torch.all(model.encoder[0].weight == 0.5)
    model(torch.randn(8, 4)).sum().backward()
    grad = model.encoder[0].weight.grad.clone()
    opt.step()
    assert torch.allclose(doc.tensor("encoder.0.weight"), 0.5 - 0.1 * grad)
    assert doc.tensor("encoder.0.weight") is model.encoder[0].weight


def test_shared_layer_is_tied_and_counted_once():
    model = make()
    doc = Document.from_module(model)
    assert doc.entry("encoder.0.weight").shared_with == ["decoder.0.weight"]
    assert doc.entry("decoder.0.bias").shared_with == ["encoder.0.bias"]
    assert doc.node("encoder.0").type_name == doc.node("decoder.0").type_name == "Linear"
    assert doc.parameter_count() == sum(p.numel() for p in model.parameters())
    distinct = {t.data_ptr(): t.numel() for t in model.state_dict().values()}
    assert doc.total_numel() == sum(distinct.values())


def test_requires_grad_is_read_live():
    model = make()
    doc = Document.from_module(model)
    assert doc.entry("head.bias").requires_grad is False
    assert doc.entry("head.weight").requires_grad is True
    assert doc.entry("decoder.1.running_mean").requires_grad is None  # a buffer: not trainable
    model.head.weight.requires_grad_(False)
    assert doc.entry("head.weight").requires_grad is False


def test_meta_device_tensors_stay_on_their_device():
    model = make("meta")
    doc = Document.from_module(model)
    for name, t in model.state_dict(keep_vars=True).items():
        entry = doc.entry(name)
        assert entry.tensor() is t and entry.tensor().device.type == "meta", name
        assert entry.shape == tuple(t.shape) and entry.dtype == t.dtype
    assert doc.node("decoder.0.weight").entry.tensor() is model.encoder[0].weight


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_stay_on_their_device():
    model = make("cuda")
    doc = Document.from_module(model)
    t = doc.tensor("encoder.0.weight")
    assert t is model.encoder[0].weight and t.device.type == "cuda"
    assert doc.entry("encoder.0.weight").shared_with == ["decoder.0.weight"]
    with torch.no_grad():
        t.mul_(2)
    assert model.decoder[0].weight.device.type == "cuda"
