"""Comparing a document's tensors with a snapshot, another document or expected tensors."""
from __future__ import annotations

from typing import Mapping

import torch

from app.core.model.document import Document


def bits(t: torch.Tensor) -> bytes:
    """The raw bytes of ``t`` (NaN payloads and signed zeros included)."""
    t = t.detach().contiguous().reshape(-1)
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""


def snapshot(doc: Document, requires_grad: bool = False) -> dict:
    """A copy of every tensor's value by name; with ``requires_grad`` also the flags (key
    ``"__grad__"``)."""
    state: dict = {n: doc.tensor(n).detach().clone() for n in doc.tensors}
    if requires_grad:
        state["__grad__"] = [bool(doc.tensor(n).requires_grad) for n in doc.tensors]
    return state


def same(a: Mapping, b: Mapping) -> bool:
    """Two snapshots hold the same names, dtypes and bits."""
    def equal(x, y) -> bool:
        if isinstance(x, torch.Tensor):
            return isinstance(y, torch.Tensor) and x.dtype == y.dtype and x.shape == y.shape \
                and bits(x) == bits(y)
        return x == y
    return list(a) == list(b) and all(equal(a[k], b[k]) for k in a)


def assert_same(doc: Document, expected: Document | Mapping[str, torch.Tensor]) -> None:
    """``doc`` holds exactly ``expected``'s tensors, in order, bit for bit, with the same dtypes
    and shapes (and, against a document, the same ties)."""
    names = list(expected.tensors) if isinstance(expected, Document) else list(expected)
    assert list(doc.tensors) == names
    for name in names:
        got = doc.tensor(name)
        want = expected.tensor(name) if isinstance(expected, Document) else expected[name]
        assert got.dtype == want.dtype and tuple(got.shape) == tuple(want.shape), name
        assert bits(got) == bits(want), name
        entry = doc.entry(name)
        assert (entry.shape, entry.dtype, entry.numel) == (tuple(want.shape), want.dtype,
                                                           want.numel()), name
        if isinstance(expected, Document):
            assert sorted(entry.shared_with) == sorted(expected.entry(name).shared_with), name


def assert_bit_equal(a, b, where: str = "", as_loaded: bool = False) -> None:
    """Same structure, key order, dtypes, bits and ties; same non-tensor values. ``as_loaded``:
    also the same view of the same storage bytes (offset, strides, requires_grad, the
    storage's whole content) and an OrderedDict's ``_metadata``, as two loaders should give."""
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride(), where
        assert bits(a) == bits(b), where
        if as_loaded:
            assert (a.storage_offset(), a.requires_grad) == (b.storage_offset(), b.requires_grad), where
            assert bytes(a.untyped_storage()) == bytes(b.untyped_storage()), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        if as_loaded:
            assert getattr(a, "_metadata", None) == getattr(b, "_metadata", None), where
        for k in a:
            assert_bit_equal(a[k], b[k], f"{where}.{k}", as_loaded)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_bit_equal(x, y, f"{where}[{i}]", as_loaded)
    else:
        assert a == b, where
