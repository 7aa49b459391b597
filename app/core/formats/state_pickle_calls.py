"""The globals ``state_pickle`` lets a pickle call, each only in the form ``torch.save`` writes.

A call's cost must stay in proportion to the bytes that ask for it. Two shapes break that and
``torch.save`` never writes either: a constructor handed a tensor (``set(t)`` of a tensor viewed
with stride 0 makes one object per element: 5e6 of them from a 1.2 KB file), and one container
handed over again and again (``torch.Size(L)`` or ``set(L)`` of one memoised list, one state
dict BUILT into many OrderedDicts: quadratic). Those raise ``Refused``: the file is refused, not
handed to ``torch.load``, whose unpickler would build them. Any other unexpected form raises
``NotPlain`` (``torch.load`` reads it).
"""
from __future__ import annotations

from collections import OrderedDict
from functools import partial
from typing import Callable

import torch

#: torch tensors have at most this many dimensions
MAX_DIMS = 64


class NotPlain(Exception):
    """The pickle holds something this reader leaves to ``torch.load``."""


class Refused(NotPlain):
    """A shape no ``torch.save`` writes, costing far more than the bytes that ask for it."""


class Stored:
    """What a storage reference unpickles to: the bytes (an ``UntypedStorage``) and their dtype."""
    __slots__ = ("storage", "dtype")

    def __init__(self, storage: torch.UntypedStorage, dtype: torch.dtype):
        self.storage, self.dtype = storage, dtype


class Calls:
    """One load's allowed calls (``table``) and what they have consumed."""

    def __init__(self, pace: Callable[[], None]):
        self.pace = pace
        self._used: set[int] = set()
        self._kept: list = []  # what ``_used`` names, alive so that no id is reused

    def once(self, obj, what: str) -> None:
        if id(obj) in self._used:
            raise Refused(f"one {what} used twice")
        self._used.add(id(obj))
        self._kept.append(obj)

    def table(self) -> dict[tuple[str, str], Callable]:
        return {("collections", "OrderedDict"): partial(_ordered_dict),
                ("builtins", "set"): partial(_set, self),
                ("torch", "Size"): partial(_size),
                ("torch._utils", "_rebuild_tensor_v2"): partial(_rebuild_tensor_v2, self),
                ("torch._utils", "_rebuild_tensor_v3"): partial(_rebuild_tensor_v3, self),
                ("torch._utils", "_rebuild_parameter"): partial(_rebuild_parameter)}

    def close(self) -> None:
        self._used.clear()
        self._kept.clear()
        self.pace = None


def _no_tensor(values, what: str) -> None:
    if any(isinstance(v, (torch.Tensor, Stored)) for v in values):
        raise Refused(f"{what} built from a tensor or storage")


def _ordered_dict(*args, **kwargs):
    if args or kwargs:
        _no_tensor(args, "an OrderedDict")
        raise NotPlain("an OrderedDict built from arguments")
    return OrderedDict()


def _set(calls: Calls, *args):
    if len(args) != 1 or type(args[0]) is not list:
        _no_tensor(args, "a set")
        raise NotPlain("a set built from something other than a list")
    items = args[0]
    calls.once(items, "list of a set's items")
    _no_tensor(items, "a set")
    return set(items)


def _size(*args):
    if len(args) != 1 or type(args[0]) not in (tuple, list):
        _no_tensor(args, "a torch.Size")
        raise NotPlain("a torch.Size of something other than a tuple")
    return torch.Size(_ints(args[0], "torch.Size"))


def _ints(x, what: str = "tensor size or stride") -> tuple[int, ...]:
    if type(x) not in (tuple, list) or len(x) > MAX_DIMS \
            or not all(type(i) is int and i >= 0 for i in x):
        raise NotPlain(f"a {what} that is not a few counts")
    return tuple(x)


def _tensor(calls: Calls, storage, offset, size, stride, requires_grad, hooks, metadata,
            dtype: torch.dtype) -> torch.Tensor:
    calls.pace()
    if type(storage) is not Stored or type(offset) is not int or offset < 0:
        raise NotPlain("a tensor with an unexpected storage or offset")
    size, stride = _ints(size), _ints(stride)
    if len(size) != len(stride) or type(requires_grad) is not bool or metadata \
            or type(hooks) is not OrderedDict or hooks:
        raise NotPlain("a tensor with hooks, metadata or an odd size")
    t = torch.empty((0,), dtype=dtype).set_(storage.storage, offset, size, stride)
    if requires_grad:
        t.requires_grad = True
    # torch's rebuild keeps the (always empty) hooks dict on the tensor: the same as none, and
    # 100k of them cost 32 MB at 100k tensors
    return t


def _rebuild_tensor_v2(calls: Calls, storage, offset, size, stride, requires_grad, hooks,
                       metadata=None):
    if type(storage) is not Stored:
        raise NotPlain("a tensor with an unexpected storage")
    return _tensor(calls, storage, offset, size, stride, requires_grad, hooks, metadata,
                   storage.dtype)


def _rebuild_tensor_v3(calls: Calls, storage, offset, size, stride, requires_grad, hooks, dtype,
                       metadata=None):
    """Tensors of dtypes with no typed storage (uint16, float8...) over untyped bytes."""
    if not isinstance(dtype, torch.dtype):
        raise NotPlain("a tensor whose dtype is not a dtype")
    return _tensor(calls, storage, offset, size, stride, requires_grad, hooks, metadata, dtype)


def _rebuild_parameter(data, requires_grad, hooks):
    if type(data) is not torch.Tensor or type(requires_grad) is not bool \
            or type(hooks) is not OrderedDict or hooks:
        raise NotPlain("a parameter with hooks or an odd tensor")
    return torch.nn.Parameter(data, requires_grad)
