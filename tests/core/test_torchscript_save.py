"""A TorchScript archive written back as a TorchScript archive: only the edited tensors' records
(and their CRCs) change, ``torch.jit.load`` of the output works and shows the edited values."""
import json
import zipfile

import pytest
import torch
from torch import nn

from app.core.errors import UserError
from app.core.formats import load_document
from app.core.formats.save import can_save_in_place, save_document


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(3, 2)
        self.register_buffer("scale", torch.full((2,), 2.0))

    def forward(self, x):
        return self.b(torch.relu(self.a(x))) * self.scale


@pytest.fixture(params=["scripted", "traced"])
def archive(request, tmp_path):
    torch.manual_seed(0)
    net = Net().eval()
    m = torch.jit.script(net) if request.param == "scripted" else torch.jit.trace(net, torch.ones(1, 4))
    path = str(tmp_path / f"{request.param}.pt")
    torch.jit.save(m, path)
    return path


def differing_ranges(a: bytes, b: bytes) -> list[int]:
    assert len(a) == len(b)
    return [i for i in range(len(a)) if a[i] != b[i]]


def allowed_positions(path: str, changed_keys: set[str]) -> set[int]:
    from app.core.formats.torchscript_writer import _Layout
    allowed: set[int] = set()
    with open(path, "rb") as f:
        layout = _Layout(f)
        for key in changed_keys:
            start, size, crcs, _ = layout.record(key)
            allowed.update(range(start, start + size))
            for c in crcs:
                allowed.update(range(c, c + 4))
    return allowed


def test_edited_archive_loads_with_jit_and_keeps_the_rest(archive, tmp_path):
    doc = load_document(archive)
    assert doc.format == "torchscript" and can_save_in_place(doc)
    with torch.no_grad():
        doc.tensor("a.weight").mul_(3)
        doc.tensor("scale").fill_(-1)
    ref = torch.jit.load(archive)
    out = str(tmp_path / "out.pt")
    save_document(doc, out)
    again = torch.jit.load(out)
    sd, old = again.state_dict(), ref.state_dict()
    assert torch.equal(sd["a.weight"], old["a.weight"] * 3)
    assert torch.equal(sd["scale"], torch.full((2,), -1.0))
    for n in ("a.bias", "b.weight", "b.bias"):
        assert torch.equal(sd[n], old[n])
    x = torch.randn(5, 4)
    assert torch.equal(again(x), (ref.b(torch.relu(torch.nn.functional.linear(
        x, old["a.weight"] * 3, old["a.bias"])))) * -1)
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None  # every CRC matches
    src, dst = open(archive, "rb").read(), open(out, "rb").read()
    from app.core.formats.torchscript_writer import _refs_by_name
    refs = _refs_by_name(doc.hierarchy)
    keys = {refs[n].storage.key for n, e in doc.tensors.items() if e.is_loaded}
    assert set(differing_ranges(src, dst)) <= allowed_positions(archive, keys)
    reopened = load_document(out)
    assert torch.equal(reopened.tensor("a.weight"), old["a.weight"] * 3)


def test_window_save_in_place_and_apply(archive, tmp_path, capsys):
    from app.__main__ import main
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"version": 1, "steps": [
        {"op": "fill", "target": "b.bias", "value": 0.25}]}))
    out = tmp_path / "applied.pt"
    assert main(["apply", str(recipe), archive, "-o", str(out)]) == 0
    loaded = torch.jit.load(str(out))
    assert torch.equal(loaded.b.bias, torch.full((2,), 0.25))
    assert torch.equal(loaded.a.weight, torch.jit.load(archive).a.weight)
    # Save over the open archive (what the window's Save does)
    doc = load_document(str(out))
    with torch.no_grad():
        doc.tensor("b.bias").fill_(0.5)
    save_document(doc, doc.path)
    assert torch.equal(torch.jit.load(str(out)).b.bias, torch.full((2,), 0.5))
    assert doc.format == "torchscript"


def test_structural_changes_cannot_go_back_into_the_archive(archive, tmp_path):
    doc = load_document(archive)
    doc.rename_tensor("a.weight", "a.w")
    assert not can_save_in_place(doc)
    with pytest.raises(UserError, match="cannot write a TorchScript archive"):
        save_document(doc, str(tmp_path / "x.pt"))
    assert not (tmp_path / "x.pt").exists()
    save_document(doc, str(tmp_path / "x.pt"), fmt="torch")  # a state_dict when asked for
    assert "a.w" in torch.load(tmp_path / "x.pt", weights_only=True)


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(5, 3)
        self.head = nn.Linear(3, 5, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, x):
        return self.head(self.emb(x))


def test_tied_weights_stay_tied_in_the_archive(tmp_path):
    path = str(tmp_path / "tied.pt")
    torch.jit.save(torch.jit.script(Tied()), path)
    doc = load_document(path)
    assert "head.weight" in doc.entry("emb.weight").shared_with
    with torch.no_grad():
        doc.tensor("emb.weight").fill_(0.125)
    out = str(tmp_path / "out.pt")
    save_document(doc, out)
    loaded = torch.jit.load(out)
    assert torch.equal(loaded.head.weight, torch.full((5, 3), 0.125))
    assert loaded.head.weight.data_ptr() == loaded.emb.weight.data_ptr()


def test_trusted_script_module_is_saved_with_jit_save(tmp_path):
    """An archive opened through torch.jit.load (under trust) is a live ScriptModule: its
    edits are in the module, and torch.jit.save writes them."""
    from app.core.model.document import Document
    module = torch.jit.script(Net())
    doc = Document.from_module(module, path=str(tmp_path / "in.pt"), fmt="torchscript")
    with torch.no_grad():
        doc.tensor("b.bias").fill_(4.0)
    out = str(tmp_path / "out.pt")
    save_document(doc, out)
    assert torch.equal(torch.jit.load(out).b.bias, torch.full((2,), 4.0))
