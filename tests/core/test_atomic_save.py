"""Atomic saves: a failure half-way leaves the old file and no temporary; saving over the open file."""
import os

import pytest
import torch
from safetensors.torch import save_file

from app.core.model.document import Document
from app.core.errors import Cancelled
from app.core.formats import load_document
from app.core.formats.save import save_document


def big_state(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {f"layer{i}.weight": torch.randn(256, 256, generator=g) for i in range(8)}


def listing(folder):
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("name", ["a.pt", "a.safetensors"])
def test_cancel_mid_write_keeps_original(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"old contents")
    before = listing(tmp_path)
    doc = Document.from_object(big_state())
    calls = {"n": 0}

    def cancelled():
        calls["n"] += 1
        return calls["n"] > 3  # a few writes succeed, then the user cancels

    with pytest.raises(Cancelled):
        save_document(doc, str(path), cancelled=cancelled)
    assert path.read_bytes() == b"old contents"
    assert listing(tmp_path) == before


class Exploding(torch.Tensor):
    """A tensor subclass whose bytes cannot be read: the writer fails after writing others."""

    def contiguous(self, *a, **k):
        raise RuntimeError("disk on fire")

    def __reduce_ex__(self, proto):
        raise RuntimeError("disk on fire")


@pytest.mark.parametrize("name", ["a.pt", "a.safetensors"])
def test_writer_raising_half_way_keeps_original(tmp_path, name):
    path = tmp_path / name
    torch.save({"x": torch.ones(3)}, path)
    original = path.read_bytes()
    state = big_state()
    state["zz.bad"] = torch.ones(4).as_subclass(Exploding)
    doc = Document.from_object(state)
    with pytest.raises(Exception):
        save_document(doc, str(path))
    assert path.read_bytes() == original
    assert listing(tmp_path) == [name]


def test_save_over_open_mmapped_torch_file(tmp_path):
    path = tmp_path / "m.pt"
    state = big_state()
    torch.save(state, path)
    doc = load_document(str(path))  # mmap'ed
    with torch.no_grad():
        doc.tensor("layer0.weight").mul_(2)  # edits are in place (copy-on-write mapping)
    save_document(doc, str(path))
    assert listing(tmp_path) == ["m.pt"]
    for n, t in state.items():  # the document still reads valid values
        expected = t * 2 if n == "layer0.weight" else t
        assert torch.equal(doc.tensor(n), expected)
    again = load_document(str(path))
    assert torch.equal(again.tensor("layer0.weight"), state["layer0.weight"] * 2)
    assert torch.equal(again.tensor("layer7.weight"), state["layer7.weight"])


def test_save_over_open_lazy_safetensors_file(tmp_path):
    path = tmp_path / "m.safetensors"
    state = big_state()
    save_file(state, str(path))
    doc = load_document(str(path))
    assert not any(e.is_loaded for e in doc.tensors.values())  # nothing read yet
    doc.tensor("layer1.weight").fill_(7)
    save_document(doc, str(path))
    assert listing(tmp_path) == ["m.safetensors"]
    for n, t in state.items():  # lazy entries still read (the old inode, same bytes)
        expected = torch.full_like(t, 7) if n == "layer1.weight" else t
        assert torch.equal(doc.tensor(n), expected)
    again = load_document(str(path))
    assert torch.equal(again.tensor("layer1.weight"), torch.full((256, 256), 7.0))
    assert torch.equal(again.tensor("layer5.weight"), state["layer5.weight"])
    doc.close()
    again.close()


def test_progress_reports_and_reaches_total(tmp_path):
    seen = []
    doc = Document.from_object(big_state())
    save_document(doc, str(tmp_path / "p.safetensors"), progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1][0] == seen[-1][1]
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))


def test_sharded_cancel_in_a_later_shard_keeps_the_old_checkpoint(tmp_path):
    """Shards are staged first and moved into place together: a cancel while writing the third
    shard leaves the previous sharded checkpoint whole and no temporary behind."""
    folder = tmp_path / "ck"
    save_document(Document.from_object(big_state(1)), str(folder), shard_size=300_000)
    before = {p: (folder / p).read_bytes() for p in listing(folder)}
    calls = {"n": 0}

    def cancelled():
        calls["n"] += 1
        return calls["n"] > 8  # past the first shards

    with pytest.raises(Cancelled):
        save_document(Document.from_object(big_state(2)), str(folder), shard_size=300_000,
                      cancelled=cancelled)
    assert {p: (folder / p).read_bytes() for p in listing(folder)} == before
    old = load_document(str(folder))
    for name, t in big_state(1).items():
        assert torch.equal(old.tensor(name), t)


def test_sharded_progress_is_monotonic_over_all_shards(tmp_path):
    seen = []
    save_document(Document.from_object(big_state()), str(tmp_path / "ck"), shard_size=300_000,
                  progress=lambda done, total: seen.append((done, total)))
    assert len({p for p in os.listdir(tmp_path / "ck") if p.endswith(".safetensors")}) > 2
    dones = [d for d, _ in seen]
    assert dones == sorted(dones) and dones[-1] == seen[-1][1]
