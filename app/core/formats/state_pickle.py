"""The unpickler of a plain torch zip checkpoint's ``data.pkl``: state_dicts and training
checkpoints made of dicts, lists, numbers, strings and tensors, read fast and nothing run.

torch's weights-only unpickler takes ~10 s for 100k tensors, most of it in per-tensor checks
this subset does not need. This one is Python's own pure-Python unpickler (its memo is a dict: a
huge memo index in a hostile file costs nothing, unlike the C unpickler's array) cut down to an
allowlist of the opcodes ``torch.save`` writes for such checkpoints and of globals, each of them
a stand-in written here:

- ``collections.OrderedDict`` (its ``_metadata`` set by BUILD, the only BUILD allowed);
- ``torch.<X>Storage`` (or ``UntypedStorage``: bytes) names a dtype; storages come from ``storage(key, dtype, numel)``, given;
- ``torch._utils._rebuild_tensor_v2`` / ``_v3`` / ``_rebuild_parameter``: a tensor viewing its storage
  (``set_`` checks that the view fits), a Parameter around it; no hooks, no extra state;
- ``torch.<dtype>`` (a dtype kept in a config), ``torch.Size``, ``builtins.set``;
  each also in torch's weights-only allowlist.

Anything else raises ``NotPlain``: the caller then reads the file with ``torch.load``, which
knows more (numpy scalars, quantized tensors, subclasses) and says what it refuses.
"""
from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from typing import Callable

import torch


class NotPlain(Exception):
    """The pickle holds something this reader leaves to ``torch.load``."""


def _storage_names() -> dict[str, torch.dtype]:
    from torch.storage import _dtype_to_storage_type_map
    quantized = {torch.qint8, torch.quint8, torch.qint32, torch.quint4x2, torch.quint2x4}
    return {name: dtype for dtype, name in _dtype_to_storage_type_map().items()
            if dtype not in quantized}


class _StorageType:
    __slots__ = ("dtype",)

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


class Stored:
    """What a storage reference unpickles to: the bytes (an ``UntypedStorage``) and their dtype."""
    __slots__ = ("storage", "dtype")

    def __init__(self, storage: torch.UntypedStorage, dtype: torch.dtype):
        self.storage, self.dtype = storage, dtype


_OPCODES = {  # what torch.save writes (protocol 2, or 4/5 when asked) for plain checkpoints
    pickle.PROTO, pickle.FRAME, pickle.STOP, pickle.MARK, pickle.POP, pickle.POP_MARK, pickle.DUP,
    pickle.NONE, pickle.NEWTRUE, pickle.NEWFALSE, pickle.BININT, pickle.BININT1, pickle.BININT2,
    pickle.LONG1, pickle.BINFLOAT, pickle.BINUNICODE, pickle.SHORT_BINUNICODE,
    pickle.BINUNICODE8, pickle.BINBYTES, pickle.SHORT_BINBYTES, pickle.BINBYTES8,
    pickle.EMPTY_TUPLE, pickle.TUPLE, pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3,
    pickle.EMPTY_LIST, pickle.APPEND, pickle.APPENDS, pickle.LIST,
    pickle.EMPTY_DICT, pickle.SETITEM, pickle.SETITEMS, pickle.DICT,
    pickle.EMPTY_SET, pickle.ADDITEMS,
    pickle.BINPUT, pickle.LONG_BINPUT, pickle.MEMOIZE, pickle.BINGET, pickle.LONG_BINGET,
    pickle.GLOBAL, pickle.STACK_GLOBAL, pickle.REDUCE, pickle.BUILD, pickle.BINPERSID,
}


def _refuse(self) -> None:
    raise NotPlain("an opcode torch.save does not write for a plain checkpoint")


class _Unpickler(pickle._Unpickler):  # the pure-Python one: each opcode overridable
    dispatch = {code: pickle._Unpickler.dispatch.get(code, _refuse) for code in range(256)}
    for _code in range(256):
        if bytes([_code]) not in _OPCODES:
            dispatch[_code] = _refuse
    del _code

    def __init__(self, data: bytes, storage: Callable, pace: Callable[[], None]):
        super().__init__(io.BytesIO(data), encoding="utf-8")
        self._storage, self._pace = storage, pace
        self._storage_types = {n: _StorageType(d) for n, d in _storage_names().items()}
        untyped = self._storage_types["UntypedStorage"] = _StorageType(torch.uint8)  # v3 tensors
        self._globals = {("collections", "OrderedDict"): OrderedDict,
                         ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor,
                         ("torch._utils", "_rebuild_tensor_v3"): self._rebuild_tensor_v3,
                         ("torch._utils", "_rebuild_parameter"): self._rebuild_parameter,
                         ("torch", "Size"): torch.Size,
                         ("builtins", "set"): set, ("__builtin__", "set"): set}
        self._globals[("torch.storage", "UntypedStorage")] = untyped
        self._callables = {id(c) for c in self._globals.values()}  # all kept alive here
        self._framed = data[:1] == pickle.PROTO and data[1:2] >= b"\x04"

    def load(self):
        """``pickle._Unpickler.load``, reading straight from the bytes where the protocol has no
        frames (``torch.save`` writes protocol 2): a third less time at 100k tensors."""
        if self._framed:
            return super().load()
        self.read, self.readline = self._file_read, self._file_readline
        self.metastack, self.stack, self.proto = [], [], 0
        self.append = self.stack.append
        read, dispatch = self.read, self.dispatch
        try:
            while True:
                key = read(1)
                if not key:
                    raise EOFError
                dispatch[key[0]](self)
        except pickle._Stop as stop:
            return stop.value

    def find_class(self, module, name):
        found = self._globals.get((module, name))
        if found is not None:
            return found
        if module == "torch" and isinstance(name, str):
            if name in self._storage_types:
                return self._storage_types[name]
            dtype = vars(torch).get(name)  # never getattr: torch imports submodules on demand
            if isinstance(dtype, torch.dtype):
                return dtype
        raise NotPlain(f"the global {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and type(pid[2]) is str
                and type(pid[3]) is str and type(pid[4]) is int and pid[4] >= 0):
            raise NotPlain("a storage reference of an unknown form")
        return self._storage(pid[2], pid[1].dtype, pid[4])

    def load_reduce(self):
        stack = self.stack
        args = stack.pop()
        func = stack[-1]
        if type(args) is not tuple or id(func) not in self._callables:
            raise NotPlain("a call of something other than the allowed rebuild functions")
        stack[-1] = func(*args)

    def load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is not OrderedDict or type(state) is not dict \
                or not all(type(k) is str for k in state):
            raise NotPlain("object state other than a state_dict's _metadata")
        inst.__dict__.update(state)

    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.BUILD[0]] = load_build

    # -- the stand-ins -------------------------------------------------------------------------
    def _rebuild_tensor(self, storage, offset, size, stride, requires_grad, hooks, metadata=None,
                        dtype=None):
        self._pace()
        if type(storage) is not Stored or type(offset) is not int or offset < 0:
            raise NotPlain("a tensor with an unexpected storage or offset")
        size, stride = _ints(size), _ints(stride)
        if len(size) != len(stride) or type(requires_grad) is not bool or hooks or metadata:
            raise NotPlain("a tensor with hooks, metadata or an odd size")
        t = torch.empty((0,), dtype=dtype or storage.dtype).set_(storage.storage, offset, size,
                                                                 stride)
        if requires_grad:
            t.requires_grad = True
        return t

    def _rebuild_tensor_v3(self, storage, offset, size, stride, requires_grad, hooks, dtype,
                           metadata=None):
        """Tensors of dtypes with no typed storage (uint16, float8...) over untyped bytes."""
        if not isinstance(dtype, torch.dtype):
            raise NotPlain("a tensor whose dtype is not a dtype")
        return self._rebuild_tensor(storage, offset, size, stride, requires_grad, hooks, metadata,
                                    dtype)

    def _rebuild_parameter(self, data, requires_grad, hooks):
        if type(data) is not torch.Tensor or type(requires_grad) is not bool or hooks:
            raise NotPlain("a parameter with hooks or an odd tensor")
        return torch.nn.Parameter(data, requires_grad)


def _ints(x) -> tuple[int, ...]:
    if not isinstance(x, tuple) or not all(type(i) is int and i >= 0 for i in x):
        raise NotPlain("a tensor size or stride that is not a tuple of counts")
    return x


def load_plain(data: bytes, storage: Callable, pace: Callable[[], None]):
    """The checkpoint object pickled in ``data``; raises NotPlain (or any error of a malformed
    pickle) where ``torch.load`` is to read it instead. ``storage(key, dtype, numel)`` returns
    the ``Stored`` of a key (the same object for the same key)."""
    unpickler = _Unpickler(data, storage, pace)
    try:
        return unpickler.load()
    finally:
        # its table of stand-ins holds its own bound methods: a cycle that would keep the
        # storages (the whole file's mapping) alive until the next full collection
        unpickler._globals.clear()
        unpickler._storage = None
        _forget(unpickler.memo, pace)
        unpickler._pace = None


def _forget(memo: dict, pace: Callable[[], None]) -> None:
    """Empty the memo (~8 entries a tensor) a piece at a time: one ``clear()`` frees the size
    and stride tuples of 100k tensors without letting the GIL go (~40 ms)."""
    pop = memo.popitem
    while memo:
        for _ in range(min(len(memo), 4096)):
            pop()
        pace()
