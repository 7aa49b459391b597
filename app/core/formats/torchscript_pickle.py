"""The restricted unpickler of a TorchScript archive's ``data.pkl``: nothing is run or read.

Every ``__torch__`` class becomes a ``_ScriptObject`` placeholder recording its name and
attribute dict, tensors become ``_TensorRef`` descriptions (storage key, offset, shape, stride,
dtype, requires_grad), and a small allowlist covers the rest; anything else raises
``NotUnderstood``.
"""
from __future__ import annotations

import io
from collections import OrderedDict
from dataclasses import dataclass

import torch

from .bounded_unpickler import BoundedUnpickler


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


class _Unpickler(BoundedUnpickler):  # never the C unpickler: a PUT's index sizes its memo
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
