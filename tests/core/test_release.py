"""Freeing a replaced document piece by piece (``core.loading.release``): everything goes, by
reference counting alone, and a document still held elsewhere stays whole."""
from __future__ import annotations

import gc
import weakref

import torch

from app.core.loading.release import release
from app.core.model.document import Document


def _document():
    sd = {"model": {f"l{i}.weight": torch.randn(3, 3) for i in range(4)}, "epoch": 2,
          "extra": [torch.ones(2), {"deep": torch.zeros(1)}]}
    return Document.from_object(sd, path=None)


def test_release_frees_every_part_without_the_cyclic_collector():
    doc = _document()
    parts = [weakref.ref(doc), weakref.ref(doc.root), weakref.ref(doc.root.find("model.l0"))]
    parts += [weakref.ref(e) for e in doc.tensors.values()]
    parts += [weakref.ref(e.tensor()) for e in doc.tensors.values()]
    closed = []
    doc._closers.append(lambda: closed.append(True))
    box = [doc]
    del doc
    gc.disable()
    try:
        release(box)
        assert box == [] and closed == [True]
        assert [p() for p in parts] == [None] * len(parts)
    finally:
        gc.enable()


def test_a_document_held_elsewhere_stays_whole():
    doc = _document()
    release([doc])
    assert len(doc.tensors) == 6 and doc.root.find("model.l3.weight") is not None
    assert torch.equal(doc.tensors["extra.0"].tensor(), torch.ones(2))
