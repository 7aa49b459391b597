"""Batched, announced changes (issue 11): a structural edit rebuilds the tree and announces the
change once, however many tensors it touches."""
from __future__ import annotations

import torch

from app.core.model.document import Document
from app.core.edits.surgery import CastEdit, DeleteEdit, RenameEdit


def training_checkpoint(n: int = 300) -> Document:
    model = {f"layer{i}.weight": torch.zeros(2) for i in range(n)}
    optim = {"state": {i: {"exp_avg": torch.zeros(2)} for i in range(n)},
             "param_groups": [{"lr": 0.1, "params": list(range(n))}]}
    return Document.from_object({"model": model, "optimizer": optim, "epoch": 3})


def counting(doc: Document) -> list[Document]:
    seen: list[Document] = []
    doc.events.connect(seen.append)
    return seen


def test_delete_300_tensors_and_its_undo_announce_once_each():
    doc = training_checkpoint()
    builds = []
    original = doc.build_tree
    doc.build_tree = lambda: (builds.append(1), original())[1]
    seen = counting(doc)
    edit = DeleteEdit("optimizer")
    edit.apply(doc)
    assert len(seen) == 1 and len(builds) == 1
    assert not any(n.startswith("optimizer.") for n in doc.tensors)
    assert doc.node("optimizer") is None
    edit.revert(doc)
    assert len(seen) == 2 and len(builds) == 2
    assert sum(n.startswith("optimizer.") for n in doc.tensors) == 300
    assert doc.node("optimizer.state.299.exp_avg") is not None


def test_glob_delete_rename_and_cast_announce_once():
    doc = training_checkpoint()
    seen = counting(doc)
    DeleteEdit("model.layer1*").apply(doc)  # 111 tensors, one by one inside
    assert len(seen) == 1
    RenameEdit(r"^model\.", "net.").apply(doc)
    assert len(seen) == 2
    cast = CastEdit("net.*", "float16")
    cast.apply(doc)
    assert len(seen) == 3 and doc.entry("net.layer0.weight").dtype == torch.float16
    assert doc.node("net.layer0.weight").entry.dtype == torch.float16
    cast.revert(doc)
    assert len(seen) == 4 and doc.announcements == 4


def test_nested_batches_announce_at_the_end_of_the_outermost():
    doc = training_checkpoint(5)
    seen = counting(doc)
    with doc.batch():
        with doc.batch():
            doc.remove_tensor("model.layer0.weight")
        assert seen == []
        doc.remove_tensor("model.layer1.weight")
        assert seen == [] and doc.node("model.layer0.weight") is not None  # tree not rebuilt yet
    assert seen == [doc] and doc.node("model.layer0.weight") is None
    doc.events.disconnect(seen.append)
    doc.remove_tensor("model.layer2.weight")
    assert seen == [doc]
