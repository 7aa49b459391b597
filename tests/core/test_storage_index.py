"""Moving a file-backed storage to private memory (and back) finds the tensors sharing it in an
index kept with the document: it looked at every tensor of the document on each read (0.4 s at
100k tensors, which kept even a small selection of a big document off the GUI thread)."""
from __future__ import annotations

import torch

from app.core.formats import load_document
from app.core.model.tensor_entry import TensorEntry


def _counting(monkeypatch):
    calls = []
    plain = TensorEntry.tensor

    def tensor(self):
        calls.append(self.name)
        return plain(self)
    monkeypatch.setattr(TensorEntry, "tensor", tensor)
    return calls


def test_reading_one_tensor_of_10k_touches_only_the_tensors_sharing_it(tmp_path, monkeypatch):
    path = str(tmp_path / "many.pt")
    sd = {f"t{i}": torch.full((2,), float(i)) for i in range(10_000)}
    torch.save(sd, path)
    doc = load_document(path)
    assert doc.file_backed(doc.tensor("t5"))
    calls = _counting(monkeypatch)
    doc.read_private([doc.entry("t5")])
    doc.read_private([doc.entry("t6")])  # t5's copy released: t5 views the file again
    assert len(calls) < 50
    assert doc.file_backed(doc.tensor("t5")) and not doc.file_backed(doc.tensor("t6"))
    assert float(doc.tensor("t6")[0]) == 6.0
    doc.close()


def test_views_of_one_storage_move_together_and_back(tmp_path):
    base = torch.arange(10.0)
    path = str(tmp_path / "views.pt")
    torch.save({"a": base[:4], "b": base[4:], "c": torch.ones(3)}, path)
    doc = load_document(path)
    a, b = doc.tensor("a"), doc.tensor("b")
    doc.read_private([doc.entry("a")])
    assert not doc.file_backed(a) and not doc.file_backed(b)
    assert a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    doc.read_private([doc.entry("c")])
    assert doc.file_backed(a) and doc.file_backed(b)  # released together: neither was edited
    assert b.tolist() == [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    doc.close()


def test_a_structural_edit_renews_the_index(tmp_path):
    base = torch.arange(6.0)
    path = str(tmp_path / "views.pt")
    torch.save({"a": base[:3], "b": base[3:]}, path)
    doc = load_document(path)
    assert doc.sharing_indexed
    doc.rename_tensor("b", "renamed")
    assert not doc.sharing_indexed  # found anew (one pass) on the next read
    doc.read_private([doc.entry("a")])
    assert doc.sharing_indexed
    assert not doc.file_backed(doc.tensor("renamed"))  # moved with a: the renamed entry counted
    doc.close()


def test_a_shown_copy_whose_tensor_was_deleted_is_dropped_on_the_next_read(tmp_path):
    """Read a, delete it, read b: a's copy belongs to no entry of the renewed index any more
    (this raised AttributeError in the selection slot, and the traceback kept the document)."""
    path = str(tmp_path / "two.pt")
    torch.save({"a": torch.ones(3), "b": torch.zeros(3)}, path)
    doc = load_document(path)
    doc.read_private([doc.entry("a")])
    doc.remove_tensor("a")
    assert doc.read_private([doc.entry("b")])[0].tolist() == [0.0, 0.0, 0.0]
    doc.close()
