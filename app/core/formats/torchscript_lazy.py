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
"""
from __future__ import annotations

import ast
import io
import os
import pickle
import struct
import sys
import threading
import weakref
import zipfile
from collections import OrderedDict
from dataclasses import dataclass

import torch

from ..model.document import Document
from ..model.tensor_entry import BUFFER, PARAMETER, TensorEntry
from ..model.ties import tie_group
from ..model.tree import Node, tree_from_module


class NotUnderstood(Exception):
    """Something in the archive this reader does not know; ``torch.jit.load`` may, with trust."""


# -- what the pickle may name ----------------------------------------------------------------

_QUANTIZED = {torch.qint8, torch.quint8, torch.qint32, torch.quint4x2, torch.quint2x4}


def _storage_dtypes() -> dict[str, torch.dtype]:
    """``FloatStorage`` -> ``torch.float32``, from torch's own table where it has one."""
    try:
        from torch.storage import _dtype_to_storage_type_map
        table = _dtype_to_storage_type_map()
    except (ImportError, AttributeError):
        table = {torch.float64: "DoubleStorage", torch.float32: "FloatStorage",
                 torch.float16: "HalfStorage", torch.bfloat16: "BFloat16Storage",
                 torch.int64: "LongStorage", torch.int32: "IntStorage", torch.int16: "ShortStorage",
                 torch.int8: "CharStorage", torch.uint8: "ByteStorage", torch.bool: "BoolStorage",
                 torch.complex64: "ComplexFloatStorage", torch.complex128: "ComplexDoubleStorage"}
    return {name: dtype for dtype, name in table.items() if dtype not in _QUANTIZED}


@dataclass(frozen=True)
class _StorageType:
    dtype: torch.dtype


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: torch.dtype
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    requires_grad: bool

    @property
    def view_key(self) -> tuple:
        return (self.storage.key, self.offset, self.shape, self.stride, self.storage.dtype)


def _int_tuple(x, what: str) -> tuple[int, ...]:
    if not isinstance(x, (tuple, list)) or not all(type(i) is int and i >= 0 for i in x):
        raise NotUnderstood(f"tensor {what} {x!r}")
    return tuple(x)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       metadata=None):
    """Like ``torch._utils._rebuild_tensor_v2``, but only describes the tensor."""
    if not isinstance(storage, _StorageRef) or type(storage_offset) is not int or storage_offset < 0:
        raise NotUnderstood("tensor with an unexpected storage or offset")
    shape, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if len(shape) != len(stride) or not isinstance(requires_grad, bool):
        raise NotUnderstood("tensor with inconsistent size, stride or requires_grad")
    if backward_hooks or metadata:
        raise NotUnderstood("tensor with hooks or metadata")
    if all(shape):  # not empty: its last element must lie inside the storage
        last = storage_offset + sum((s - 1) * st for s, st in zip(shape, stride))
        if last >= storage.numel:
            raise NotUnderstood("tensor reaching past its storage")
    return _TensorRef(storage, storage_offset, shape, stride, requires_grad)


def _same(data, *_type_info):
    return data


def _device(*args):
    if not all(isinstance(a, (str, int)) for a in args):
        raise NotUnderstood("odd torch.device arguments")
    return torch.device(*args)


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("collections", "OrderedDict"): OrderedDict,
    ("torch", "device"): _device,
    **{("torch.jit._pickle", n): _same for n in
       ("build_intlist", "build_tensorlist", "build_doublelist", "build_boollist",
        "restore_type_tag")},
}


class _ScriptObject:
    """A ``__torch__`` object: its class's qualified name and the attribute dict it was built from."""

    qualname = ""
    state = None

    def __setstate__(self, state):
        self.state = state

    @property
    def class_name(self) -> str:
        return self.qualname.rsplit(".", 1)[-1]


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes):
        super().__init__(io.BytesIO(data))
        self._classes: dict[str, type] = {}
        self._storages: dict[str, _StorageRef] = {}
        self._dtypes = _storage_dtypes()

    def find_class(self, module: str, name: str):
        if module == "__torch__" or module.startswith("__torch__."):
            qualname = f"{module}.{name}"
            if qualname.startswith("__torch__.torch.classes."):  # C++ classes: opaque state
                raise NotUnderstood(f"custom class {qualname}")
            cls = self._classes.get(qualname)
            if cls is None:
                cls = self._classes[qualname] = type(name, (_ScriptObject,), {"qualname": qualname})
            return cls
        if module == "torch" and name in self._dtypes:
            return _StorageType(self._dtypes[name])
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise NotUnderstood(f"global {module}.{name}") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise NotUnderstood(f"persistent id {pid!r}")
        _, stype, key, location, numel = pid
        if not (isinstance(stype, _StorageType) and isinstance(key, str) and key.isdigit()
                and isinstance(location, str) and type(numel) is int and numel >= 0):
            raise NotUnderstood(f"persistent id {pid!r}")
        ref = self._storages.setdefault(key, _StorageRef(key, stype.dtype, numel))
        if ref.dtype != stype.dtype or ref.numel != numel:
            raise NotUnderstood(f"storage {key} seen with two types")
        return ref


# -- class sources: which attributes are parameters, which buffers ---------------------------

@dataclass
class _ClassInfo:
    is_module: bool
    parameters: list[str]
    buffers: list[str]


def _str_list(node: ast.expr) -> list[str]:
    if isinstance(node, (ast.List, ast.Tuple)) and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
        return [e.value for e in node.elts]
    raise NotUnderstood("__parameters__ / __buffers__ is not a list of names")


def _parse_classes(source: str) -> dict[str, _ClassInfo]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as exc:
        raise NotUnderstood(f"class source does not parse: {exc}") from None
    out = {}
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef):
            continue
        bases = [b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else ""
                 for b in cls.bases]
        info = _ClassInfo("Module" in bases, [], [])
        for stmt in cls.body:
            if isinstance(stmt, ast.FunctionDef) and stmt.name in ("__setstate__", "__getstate__"):
                raise NotUnderstood(f"class {cls.name} defines {stmt.name}")
            if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                    and isinstance(stmt.targets[0], ast.Name)):
                if stmt.targets[0].id == "__parameters__":
                    info.parameters = _str_list(stmt.value)
                elif stmt.targets[0].id == "__buffers__":
                    info.buffers = _str_list(stmt.value)
        out[cls.name] = info
    return out


# -- the module hierarchy, shaped like what tree.tree_from_module walks ----------------------

class ModuleStub:
    """A module of the archive: class name, parameters, buffers and children, in slot order.

    It answers what ``tree.tree_from_module`` asks of an ``nn.Module`` (``original_name``,
    ``named_parameters`` / ``named_buffers`` without recursion, ``_modules``).
    """

    def __init__(self, qualname: str):
        self.qualname = qualname
        self.original_name = qualname.rsplit(".", 1)[-1]
        self._parameters: dict[str, _TensorRef | None] = {}
        self._buffers: dict[str, _TensorRef | None] = {}
        self._modules: dict[str, ModuleStub] = {}

    def named_parameters(self, recurse: bool = False, remove_duplicate: bool = False):
        return iter(self._parameters.items())

    def named_buffers(self, recurse: bool = False, remove_duplicate: bool = False):
        return iter(self._buffers.items())


class _Archive:
    def __init__(self, zf: zipfile.ZipFile):
        self.zf = zf
        roots = [n[:-len("/data.pkl")] for n in zf.namelist()
                 if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(roots) != 1:
            raise NotUnderstood("no single <archive>/data.pkl")
        self.prefix = roots[0]
        self._sources: dict[str, dict[str, _ClassInfo]] = {}

    def read(self, name: str) -> bytes:
        try:
            return self.zf.read(f"{self.prefix}/{name}")
        except KeyError:
            raise NotUnderstood(f"no record {name}") from None

    def class_info(self, qualname: str) -> _ClassInfo:
        module, _, name = qualname.rpartition(".")
        if module not in self._sources:
            source = self.read("code/" + module.replace(".", "/") + ".py")
            self._sources[module] = _parse_classes(source.decode("utf-8"))
        try:
            return self._sources[module][name]
        except KeyError:
            raise NotUnderstood(f"no source for class {qualname}") from None

    def data_offset(self, key: str, nbytes: int) -> int:
        """Where the bytes of ``data/<key>`` start in the file (stored uncompressed)."""
        try:
            info = self.zf.getinfo(f"{self.prefix}/data/{key}")
        except KeyError:
            raise NotUnderstood(f"no record data/{key}") from None
        if info.compress_type != zipfile.ZIP_STORED or info.file_size < nbytes:
            raise NotUnderstood(f"record data/{key} is compressed or too short")
        fp = self.zf.fp
        fp.seek(info.header_offset)
        head = fp.read(30)
        if len(head) != 30 or head[:4] != b"PK\x03\x04":
            raise NotUnderstood(f"bad local header of data/{key}")
        name_len, extra_len = struct.unpack("<HH", head[26:30])
        return info.header_offset + 30 + name_len + extra_len


def _stub_refs(root: ModuleStub, seen: set[int] | None = None):
    """Every tensor of every module once (a shared module is walked once)."""
    seen = set() if seen is None else seen
    if id(root) not in seen:
        seen.add(id(root))
        yield from (r for r in (*root._parameters.values(), *root._buffers.values()) if r is not None)
        for child in root._modules.values():
            yield from _stub_refs(child, seen)


def _stub_tree(archive: _Archive, root: _ScriptObject) -> ModuleStub:
    stubs: dict[int, ModuleStub] = {}

    def stub(obj: _ScriptObject) -> ModuleStub:
        if id(obj) in stubs:  # a submodule used at several places: one stub, like one module
            return stubs[id(obj)]
        info = archive.class_info(obj.qualname)
        if not info.is_module or not isinstance(obj.state, dict):
            raise NotUnderstood(f"{obj.qualname} is not a module built from an attribute dict")
        s = stubs[id(obj)] = ModuleStub(obj.qualname)
        for attr, value in obj.state.items():
            if not isinstance(attr, str):
                raise NotUnderstood(f"attribute name {attr!r}")
            if attr in info.parameters or attr in info.buffers:
                if value is not None and not isinstance(value, _TensorRef):
                    raise NotUnderstood(f"{obj.qualname}.{attr} is not a tensor")
                (s._parameters if attr in info.parameters else s._buffers)[attr] = value
            elif isinstance(value, _ScriptObject) and archive.class_info(value.qualname).is_module:
                s._modules[attr] = stub(value)
        return s

    if not isinstance(root, _ScriptObject):
        raise NotUnderstood("data.pkl does not hold a module")
    return stub(root)


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
