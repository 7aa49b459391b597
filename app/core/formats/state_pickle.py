"""The unpickler of a plain torch zip checkpoint's ``data.pkl``: state_dicts and training
checkpoints made of dicts, lists, numbers, strings and tensors, read fast and nothing run.

torch's weights-only unpickler takes ~10 s for 100k tensors, most of it in per-tensor checks
this subset does not need. This one is Python's own pure-Python unpickler (its memo is a dict: a
huge memo index in a hostile file costs nothing, unlike the C unpickler's array) cut down to an
allowlist of the opcodes ``torch.save`` writes for such checkpoints and of globals (a subset of
torch's weights-only allowlist), each a stand-in in ``state_pickle_calls`` accepting only the
form ``torch.save`` writes:

- ``collections.OrderedDict()``, its ``_metadata`` set by BUILD (the only BUILD, once each);
- ``torch.<X>Storage`` / ``torch.storage.UntypedStorage`` name a dtype; storages come from
  ``storage(key, dtype, numel)``, given;
- ``torch._utils._rebuild_tensor_v2`` / ``_v3`` / ``_rebuild_parameter``: a tensor viewing its
  storage (``set_`` checks that the view fits), a Parameter around it; no hooks, no extra state;
- ``torch.<dtype>`` by its own name (a dtype kept in a config), ``torch.Size``, ``builtins.set``.

SETITEM(S) fill only dicts, APPEND(S) only lists, ADDITEMS only sets. Anything else raises
``NotPlain``: the caller then reads the file with ``torch.load``, which knows more (numpy
scalars, quantized tensors, subclasses) and says what it refuses; ``Refused`` (see
``state_pickle_calls``) refuses the file outright.
"""
from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from typing import Callable

import torch

from .state_pickle_calls import Calls, NotPlain, Refused, Stored

__all__ = ["NotPlain", "Refused", "Stored", "load_plain"]


def _storage_names() -> dict[str, torch.dtype]:
    from torch.storage import _dtype_to_storage_type_map
    quantized = {torch.qint8, torch.quint8, torch.qint32, torch.quint4x2, torch.quint2x4}
    return {name: dtype for dtype, name in _dtype_to_storage_type_map().items()
            if dtype not in quantized}


class _StorageType:
    __slots__ = ("dtype",)

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


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

    def __init__(self, data: bytes, storage: Callable, calls: Calls):
        super().__init__(io.BytesIO(data), encoding="utf-8")
        self._storage, self._calls = storage, calls
        self._storage_types = {n: _StorageType(d) for n, d in _storage_names().items()}
        self._globals = calls.table()
        self._globals[("torch.storage", "UntypedStorage")] = _StorageType(torch.uint8)  # v3
        self._callables = {id(c) for c in self._globals.values()}  # all kept alive here
        self._dtypes = {n: d for n, d in vars(torch).items()
                        if isinstance(d, torch.dtype) and str(d) == f"torch.{n}"}  # no aliases
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
        if module == "__builtin__" and self.proto < 3:  # protocol 2's name for builtins
            module = "builtins"
        found = self._globals.get((module, name))
        if found is not None:
            return found
        if module == "torch" and isinstance(name, str):
            if name in self._storage_types:
                return self._storage_types[name]
            if name in self._dtypes:
                return self._dtypes[name]
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
        self._calls.once(inst, "OrderedDict given its state")
        self._calls.once(state, "state")
        inst.__dict__.update(state)

    def load_setitem(self):
        if type(self.stack[-3]) not in (dict, OrderedDict):
            raise NotPlain("SETITEM on something other than a dict")
        super().load_setitem()

    def load_setitems(self):
        if type(self._marked()) not in (dict, OrderedDict):
            raise NotPlain("SETITEMS on something other than a dict")
        super().load_setitems()

    def load_append(self):
        if type(self.stack[-2]) is not list:
            raise NotPlain("APPEND to something other than a list")
        super().load_append()

    def load_appends(self):
        if type(self._marked()) is not list:
            raise NotPlain("APPENDS to something other than a list")
        super().load_appends()

    def load_additems(self):
        if type(self._marked()) is not set:
            raise NotPlain("ADDITEMS to something other than a set")
        super().load_additems()

    def _marked(self):
        """What a MARK-ed opcode (SETITEMS, APPENDS, ADDITEMS) will fill: the item below the mark."""
        below = self.metastack[-1] if self.metastack else None
        return below[-1] if below else None

    for _op, _fn in ((pickle.REDUCE, load_reduce), (pickle.BUILD, load_build),
                     (pickle.SETITEM, load_setitem), (pickle.SETITEMS, load_setitems),
                     (pickle.APPEND, load_append), (pickle.APPENDS, load_appends),
                     (pickle.ADDITEMS, load_additems)):
        dispatch[_op[0]] = _fn
    del _op, _fn


def load_plain(data: bytes, storage: Callable, pace: Callable[[], None]):
    """The checkpoint object pickled in ``data``; raises NotPlain (or any error of a malformed
    pickle) where ``torch.load`` is to read it instead, Refused where nothing is to read it.
    ``storage(key, dtype, numel)`` returns the ``Stored`` of a key (the same for the same key)."""
    calls = Calls(pace)
    unpickler = _Unpickler(data, storage, calls)
    try:
        return unpickler.load()
    finally:
        # nothing of the unpickler may outlive the load: what it still holds after an error
        # (the stack, the memo) would keep storages, the whole file's mapping, alive
        unpickler._globals.clear()
        unpickler._storage = unpickler.append = None
        unpickler.stack, unpickler.metastack = [], []
        _forget(unpickler.memo, pace)
        calls.close()


def _forget(memo: dict, pace: Callable[[], None]) -> None:
    """Empty the memo (~8 entries a tensor) a piece at a time: one ``clear()`` frees the size
    and stride tuples of 100k tensors without letting the GIL go (~40 ms)."""
    pop = memo.popitem
    while memo:
        for _ in range(min(len(memo), 4096)):
            pop()
        pace()
