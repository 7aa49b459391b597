"""TorchScript archives read lazily, without ``torch.jit.load`` and without running any code.

A TorchScript archive is a zip: ``<archive>/data.pkl`` pickles the module objects (each a
``__torch__.<qualified class>`` built from a dict of its attributes), tensors point through
persistent ids ``('storage', <dtype>Storage, key, location, numel)`` at ``<archive>/data/<key>``,
and ``<archive>/code/__torch__/...py`` holds each class's source, whose ``__parameters__`` /
``__buffers__`` lists say which tensor attributes are parameters and which are buffers.

``read_torchscript(path)`` unpickles ``data.pkl`` with a restricted unpickler: every
``__torch__`` class becomes a placeholder recording its name and attribute dict, tensors become
descriptions (storage key, offset, shape, stride, dtype, requires_grad), and a small allowlist
covers the rest; anything else raises ``NotUnderstood``, and the caller refuses the archive
unless the user trusts it (only then ``torch.jit.load``, which runs the archive's code). The class sources are parsed with ``ast`` (never executed). Every tensor is a
view into one private (copy-on-write) memory map of the file, made when first asked for: edits
never reach the file, and nothing is read until a tensor is.

The unpickler lives in ``torchscript_pickle``, the zip and its module hierarchy in
``torchscript_archive``; this module maps the tensors and builds the document.
"""
from __future__ import annotations

import os
import sys
import threading
import weakref
import zipfile

import torch

from ..model.document import Document
from ..model.tensor_entry import BUFFER, PARAMETER, TensorEntry
from ..model.ties import tie_group
from ..model.tree import Node, tree_from_module
from .torchscript_archive import ModuleStub, _Archive, _stub_refs, _stub_tree
from .torchscript_pickle import NotUnderstood, _TensorRef, _Unpickler

__all__ = ["ModuleStub", "NotUnderstood", "TorchScriptDocument", "read_torchscript"]


# -- tensors: views into one private memory map ---------------------------------------------

class _Storages:
    """The file mapped once, copy-on-write; each tensor a view made on first use."""

    def __init__(self, path: str, size: int, offsets: dict[str, int]):
        # Mapped now (no bytes are read): a later save over ``path`` replaces the file, and
        # lazy entries must keep reading the bytes of the file that was opened.
        self._file = torch.UntypedStorage.from_file(path, False, size)
        self._offsets = offsets
        self._storages: dict[str, torch.UntypedStorage] = {}
        self._views: "weakref.WeakValueDictionary[tuple, torch.Tensor]" = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def tensor(self, ref: _TensorRef) -> torch.Tensor:
        """Tied names (one storage, one view) get the same tensor object while it lives."""
        with self._lock:
            t = self._views.get(ref.view_key)
            if t is not None:
                return t
            st = self._storages.get(ref.storage.key)
            if st is None:
                start = self._offsets[ref.storage.key]
                nbytes = ref.storage.numel * _element_size(ref.storage.dtype)
                st = self._storages[ref.storage.key] = self._file[start:start + nbytes]
            t = torch.empty(0, dtype=ref.storage.dtype).set_(st, ref.offset, ref.shape, ref.stride)
            if ref.requires_grad and (t.is_floating_point() or t.is_complex()):
                t.requires_grad_(True)
            self._views[ref.view_key] = t
            return t


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


# -- the document -----------------------------------------------------------------------------

class TorchScriptDocument(Document):
    """A TorchScript archive opened lazily: no ``module`` (edits change the lazy tensors; saving
    writes a state_dict), but the tree still shows the archive's modules and class names."""

    def __init__(self, tensors: list[TensorEntry], hierarchy: ModuleStub, **kw):
        self.hierarchy = hierarchy
        self._hierarchy_names = [e.name for e in tensors]
        super().__init__(tensors, **kw)

    def build_tree(self) -> Node:
        if self.hierarchy is not None and sorted(self.tensors) == sorted(self._hierarchy_names):
            self.root = tree_from_module(self.hierarchy, self.tensors)
            return self.root
        return super().build_tree()  # renamed or removed tensors: groups from dotted names


def _entries(root: ModuleStub, storages: _Storages) -> list[tuple[TensorEntry, _TensorRef]]:
    """Like ``tree.module_entries``: parameters, then buffers, then children, every name."""
    out: list[tuple[TensorEntry, _TensorRef]] = []

    def collect(m: ModuleStub, prefix: str, active: set[int]) -> None:
        if id(m) in active:
            return
        active.add(id(m))
        for kind, table in ((PARAMETER, m._parameters), (BUFFER, m._buffers)):
            for name, ref in table.items():
                if ref is not None:
                    entry = TensorEntry.lazy(prefix + name, ref.shape, ref.storage.dtype,
                                             lambda r=ref: storages.tensor(r), kind)
                    out.append((entry, ref))
        for child_name, child in m._modules.items():
            collect(child, f"{prefix}{child_name}.", active)
        active.discard(id(m))

    collect(root, "", set())
    return out


def _link_ties(entries: list[tuple[TensorEntry, _TensorRef]]) -> None:
    """``ties.link_aliases`` without reading: one storage key, offset, shape, stride, dtype."""
    groups: dict[tuple, list[TensorEntry]] = {}
    for e, ref in entries:
        if e.numel:
            groups.setdefault(ref.view_key, []).append(e)
    for group in groups.values():
        if len(group) > 1:
            tie_group(group)


def read_torchscript(path: str) -> TorchScriptDocument:
    """Open a TorchScript archive lazily; raises NotUnderstood where only ``torch.jit.load`` could."""
    try:
        with zipfile.ZipFile(path) as zf:
            archive = _Archive(zf)
            try:
                order = archive.read("byteorder").decode().strip()
            except NotUnderstood:
                order = "little"  # archives from before the record existed
            if order != sys.byteorder:
                raise NotUnderstood(f"{order}-endian data")
            try:
                root_obj = _Unpickler(archive.read("data.pkl")).load()
            except NotUnderstood:
                raise
            except Exception as exc:  # truncated, odd opcodes, BUILD on the wrong thing
                raise NotUnderstood(f"data.pkl: {exc}") from None
            hierarchy = _stub_tree(archive, root_obj)
            offsets = {}
            for r in _stub_refs(hierarchy):
                if r.storage.key not in offsets:
                    nbytes = r.storage.numel * _element_size(r.storage.dtype)
                    offsets[r.storage.key] = archive.data_offset(r.storage.key, nbytes)
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as exc:
        raise NotUnderstood(str(exc)) from None
    storages = _Storages(path, os.path.getsize(path), offsets)
    entries = _entries(hierarchy, storages)
    _link_ties(entries)
    return TorchScriptDocument([e for e, _ in entries], hierarchy, path=path, fmt="torchscript")
