"""TorchScript archives read lazily: the same tree and values as torch.jit.load, nothing read at
open, edits copy-on-write, and anything not understood falls back or is refused, never executed."""
import hashlib
import os
import pickle
import zipfile
from typing import Tuple

import pytest
import torch
from torch import nn

from app.core.model.document import Document
from app.core.edits.values import FillEdit, RequiresGradEdit
from app.core.errors import CheckpointError, UntrustedCodeError
from app.core.formats import load_document
from app.core.formats.torchscript_lazy import NotUnderstood, TorchScriptDocument, read_torchscript
from app.core.formats.save import can_save_in_place, save_document


class Tied(nn.Module):
    """A submodule used twice, a tied parameter, odd dtypes, views sharing one storage."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.shared = nn.Linear(4, 4)
        self.body = nn.Sequential(self.shared, nn.ReLU(), self.shared)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.emb.weight
        self.fp16 = nn.Parameter(torch.randn(3, 5).half(), requires_grad=False)
        base = torch.arange(12, dtype=torch.float64).reshape(3, 4)
        self.register_buffer("transposed", base.t())  # a non-contiguous view
        self.register_buffer("row0", base[0])  # views of one storage at two offsets: not tied
        self.register_buffer("row2", base[2])
        self.register_buffer("flags", torch.tensor([True, False, True]))
        self.register_buffer("bf", torch.randn(2, 2).to(torch.bfloat16))

    def forward(self, x):
        y = self.head(self.body(self.emb(x)))
        return y + self.fp16.float().sum() + self.row0.sum() + self.row2.sum() + self.transposed.sum()


def _conv_bn():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())
    net(torch.randn(4, 1, 6, 6))  # one training step: running stats and num_batches_tracked move
    return net.eval()


ARCHIVES = {
    "sequential": lambda: torch.jit.script(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))),
    "linear_root": lambda: torch.jit.script(nn.Linear(2, 2)),
    "lstm": lambda: torch.jit.script(nn.LSTM(3, 4, 2)),
    "conv_bn_script": lambda: torch.jit.script(_conv_bn()),
    "conv_bn_trace": lambda: torch.jit.trace(_conv_bn(), torch.randn(1, 1, 5, 5)),
    "tied_script": lambda: torch.jit.script(Tied()),
    "tied_trace": lambda: torch.jit.trace(Tied(), torch.tensor([1, 2])),
}


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ts")
    torch.manual_seed(0)
    out = {}
    for name, make in ARCHIVES.items():
        path = folder / f"{name}.pt"
        torch.jit.save(make(), str(path))
        out[name] = str(path)
    return out


def rows(node, depth=0):
    e = node.entry
    row = [(depth, node.name, node.type_name, node.kind,
            e and (e.name, e.kind, e.shape, e.dtype, tuple(e.shared_with)))]
    for c in node.children:
        row += rows(c, depth + 1)
    return row


def raw(t: torch.Tensor) -> torch.Tensor:
    return t.detach().reshape(-1).view(torch.uint8)


def digest(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.mark.parametrize("name", list(ARCHIVES))
def test_same_tree_and_values_as_jit_load(archives, name):
    path = archives[name]
    doc = load_document(path)
    ref = Document.from_module(torch.jit.load(path, map_location="cpu"), path=path, fmt="torchscript")
    assert isinstance(doc, TorchScriptDocument)
    assert doc.format == "torchscript" and doc.path == path and doc.module is None
    assert rows(doc.root) == rows(ref.root)
    assert doc.names() == ref.names()
    assert not any(e.is_loaded for e in doc.tensors.values()), "open reads no tensor"
    assert doc.total_numel() == ref.total_numel() and doc.parameter_count() == ref.parameter_count()
    for n, e in ref.tensors.items():
        ours, theirs = doc.tensor(n), e.tensor()
        assert (ours.shape, ours.stride(), ours.dtype) == (theirs.shape, theirs.stride(), theirs.dtype), n
        assert torch.equal(raw(ours), raw(theirs)), n
        assert ours.requires_grad == theirs.requires_grad, n


def test_shared_module_and_tied_parameter(archives):
    doc = load_document(archives["tied_script"])
    assert [c.name for c in doc.root.children if c.kind == "module"] == ["emb", "shared", "body", "head"]
    assert [c.type_name for c in doc.node("body").children] == ["Linear", "ReLU", "Linear"]
    assert doc.entry("head.weight").shared_with == ["emb.weight"]
    assert sorted(doc.aliases("shared.weight")) == ["body.0.weight", "body.2.weight", "shared.weight"]
    assert doc.entry("row0").shared_with == [] and doc.entry("row2").shared_with == []
    assert doc.entry("flags").kind == "buffer"
    with torch.no_grad():
        doc.tensor("emb.weight")[0, 0] = 42.0
    assert doc.tensor("head.weight")[0, 0] == 42.0, "tied names are one tensor"
    assert doc.tensor("head.weight") is doc.tensor("emb.weight")


def test_batchnorm_buffers(archives):
    doc = load_document(archives["conv_bn_trace"])
    assert [c.type_name for c in doc.root.children] == ["Conv2d", "BatchNorm2d", "ReLU"]
    nbt = doc.entry("1.num_batches_tracked")
    assert nbt.kind == "buffer" and nbt.dtype == torch.int64 and nbt.shape == ()
    assert doc.tensor("1.num_batches_tracked").item() == 1
    assert doc.entry("1.weight").kind == "parameter"


def test_edit_in_place_is_copy_on_write(archives, tmp_path):
    path = str(tmp_path / "cow.pt")
    with open(archives["tied_script"], "rb") as src, open(path, "wb") as dst:
        dst.write(src.read())
    before = digest(path)
    doc = load_document(path)
    original = doc.tensor("shared.weight").clone()
    with torch.no_grad():
        for e in doc.unique_entries():  # each storage once: aliases are one tensor
            t = e.tensor()
            if t.is_floating_point():
                t.mul_(2)
    assert torch.equal(doc.tensor("body.2.weight"), original * 2)
    assert digest(path) == before, "the file never changes"
    assert torch.equal(load_document(path).tensor("shared.weight"), original)


def test_freeze_and_fill_in_place(archives):
    doc = load_document(archives["sequential"])
    weight = doc.tensor("0.weight")
    ptr = weight.data_ptr()
    freeze = RequiresGradEdit(["0.weight", "0.bias"], False)
    freeze.apply(doc)
    assert [doc.tensor(n).requires_grad for n in ("0.weight", "0.bias")] == [False, False]
    FillEdit(["0.weight"], 2.0).apply(doc)
    assert doc.tensor("0.weight") is weight and weight.data_ptr() == ptr
    assert torch.equal(weight, torch.full((4, 3), 2.0))
    freeze.revert(doc)
    assert [doc.tensor(n).requires_grad for n in ("0.weight", "0.bias")] == [True, True]


def test_save_as_writes_a_state_dict(archives, tmp_path):
    doc = load_document(archives["tied_script"])
    assert can_save_in_place(doc)  # written back into the archive (test_torchscript_save.py)
    with torch.no_grad():
        doc.tensor("emb.weight").fill_(3.0)
    out = str(tmp_path / "sd.pt")
    save_document(doc, out, fmt="torch")  # a state_dict, when asked for
    sd = torch.load(out, weights_only=True)
    ref = torch.jit.load(archives["tied_script"], map_location="cpu").state_dict()
    assert list(sd) == list(ref)
    assert torch.equal(sd["head.weight"], torch.full((10, 4), 3.0))
    assert sd["head.weight"].untyped_storage().data_ptr() == sd["emb.weight"].untyped_storage().data_ptr()
    assert torch.equal(sd["body.2.bias"], ref["body.2.bias"])
    assert doc.format == "torch" and can_save_in_place(doc)


def test_save_over_the_open_archive_keeps_lazy_entries_readable(archives, tmp_path):
    path = str(tmp_path / "same.pt")
    with open(archives["lstm"], "rb") as src, open(path, "wb") as dst:
        dst.write(src.read())
    expected = torch.jit.load(path, map_location="cpu").state_dict()
    doc = load_document(path)
    save_document(doc, path)  # replaces the file the document maps
    for n, t in expected.items():
        assert torch.equal(doc.tensor(n), t), n


def test_rename_falls_back_to_dotted_groups(archives):
    doc = load_document(archives["sequential"])
    doc.rename_tensor("0.weight", "first.weight")
    assert doc.node("first.weight").entry is doc.entry("first.weight")
    doc.rename_tensor("first.weight", "0.weight")
    assert doc.root.children[0].type_name == "Linear", "the module tree is back"


def _with_data_pkl(src: str, dst: str, payload: bytes) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, payload if info.filename.endswith("/data.pkl") else zin.read(info))


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_unknown_global_is_refused_without_running_it(archives, tmp_path):
    marker = tmp_path / "ran"
    path = str(tmp_path / "evil.pt")
    _with_data_pkl(archives["sequential"], path, pickle.dumps(_Evil(marker), protocol=2))
    with pytest.raises(NotUnderstood, match="global"):
        read_torchscript(path)
    with pytest.raises(UntrustedCodeError):
        load_document(path)  # never falls back to torch.jit.load without trust
    assert not marker.exists()


def test_garbage_data_pkl_is_refused(archives, tmp_path):
    path = str(tmp_path / "garbage.pt")
    _with_data_pkl(archives["sequential"], path, b"\x80\x02not a pickle")
    with pytest.raises(NotUnderstood):
        read_torchscript(path)
    with pytest.raises(CheckpointError):
        load_document(path)


class _WithState(nn.Module):
    """Custom __getstate__/__setstate__: the lazy reader cannot know what they do."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(2, 2))
        self.k = 3

    def forward(self, x):
        return x @ self.w * self.k

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, int, bool]:
        return (self.w, self.k, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, int, bool]) -> None:
        self.w = state[0]
        self.k = state[1]
        self.training = state[2]


def test_not_understood_archive_needs_trust_for_jit_load(tmp_path):
    path = str(tmp_path / "state.pt")
    torch.jit.save(torch.jit.script(_WithState()), path)
    with pytest.raises(NotUnderstood, match="__getstate__"):
        read_torchscript(path)
    with pytest.raises(UntrustedCodeError, match="--trust"):
        load_document(path)
    doc = load_document(path, trust=True)
    assert doc.format == "torchscript" and doc.module is not None and doc.names() == ["w"]
