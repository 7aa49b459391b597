"""A watch over every torch operation an expression runs: no writes into the edited tensor, no
allocation beyond a bound, and a cancel check between operations.

It is a ``TorchDispatchMode`` (thread-local: it sees only the operations of the thread that
evaluates): each aten operation is first run on ``meta`` copies of its arguments, which gives the
shapes of its results without allocating anything, so ``torch.ones(10**12)`` or
``w.repeat(10**5, 10**5)`` is refused before a byte is taken. Operations whose result size
depends on the data (``nonzero``, boolean indexing, ``unique``) cannot run on ``meta``; they are
allowed only from a short list whose results are never larger than their inputs allow.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from .errors import Cancelled, UserError

aten = torch.ops.aten

#: operations whose result size depends on values, bounded by their inputs' sizes
_DATA_DEPENDENT = {
    "nonzero", "nonzero_static", "masked_select", "index", "_unique", "_unique2", "unique_dim",
    "unique_consecutive", "_local_scalar_dense", "argwhere", "item", "is_nonzero", "equal",
    "allclose", "_assert_async", "histc", "bucketize", "searchsorted", "sort", "topk", "kthvalue",
    "median", "nanmedian", "quantile", "nanquantile",
}


class Refused(UserError):
    """The expression did something it may not do (the message says what)."""


def storage_key(t: torch.Tensor):
    try:
        return (t.device.type, t.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError):  # sparse, quantized: no plain storage
        return None


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _to_meta(x):
    if isinstance(x, torch.Tensor):
        if x.device.type == "meta":
            return x
        return torch.empty_strided(x.size(), x.stride(), dtype=x.dtype, device="meta")
    if isinstance(x, torch.device):
        return torch.device("meta")
    return x


class Guard(TorchDispatchMode):
    def __init__(self, protected: list[torch.Tensor], limit_bytes: int,
                 cancelled: Callable[[], bool] | None = None):
        super().__init__()
        self.protected = {k for k in map(storage_key, protected) if k is not None}
        self.limit = int(limit_bytes)
        self.cancelled = cancelled

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.cancelled is not None and self.cancelled():
            raise Cancelled()
        self._check_writes(func, args, kwargs)
        name = func.overloadpacket.__name__
        meta_ok = True
        try:
            meta_args = tree_map(_to_meta, args)
            meta_kwargs = {k: (torch.device("meta") if k == "device" else tree_map(_to_meta, v))
                           for k, v in kwargs.items()}
            self._check_sizes(func, func(*meta_args, **meta_kwargs))
        except Refused:
            raise
        except Exception:  # no meta kernel, or the size depends on the data
            meta_ok = False
        if not meta_ok and name not in _DATA_DEPENDENT:
            raise Refused(f"{name} cannot be checked before it runs, so it is not allowed")
        out = func(*args, **kwargs)
        self._check_sizes(func, out)
        return out

    def _check_writes(self, func, args, kwargs) -> None:
        schema = func._schema
        if not schema.is_mutable:
            return
        for i, arg in enumerate(schema.arguments):
            info = arg.alias_info
            if info is None or not info.is_write:
                continue
            value = kwargs.get(arg.name) if (arg.kwarg_only or i >= len(args)) else args[i]
            for t in tree_flatten(value)[0]:
                if isinstance(t, torch.Tensor) and storage_key(t) in self.protected:
                    raise Refused(f"{func.overloadpacket.__name__} would change w in place; an "
                                  "expression must compute new values (drop inplace / out "
                                  "arguments and methods ending in _)")

    def _check_sizes(self, func, out) -> None:
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and _nbytes(t) > self.limit:
                raise Refused(f"{func.overloadpacket.__name__} would make a tensor of "
                              f"{list(t.shape)} ({_nbytes(t) / 2**20:,.0f} MiB), more than an "
                              f"expression on this tensor may use ({self.limit / 2**20:,.0f} MiB)")
