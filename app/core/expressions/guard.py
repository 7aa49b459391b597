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

from ..errors import Cancelled, UserError

aten = torch.ops.aten

#: operations whose result size depends on values, bounded by their inputs' sizes
_DATA_DEPENDENT = {
    "nonzero", "nonzero_static", "masked_select", "index", "_unique", "_unique2", "unique_dim",
    "unique_consecutive", "_local_scalar_dense", "argwhere", "item", "is_nonzero", "equal",
    "allclose", "_assert_async", "histc", "bucketize", "searchsorted", "sort", "topk", "kthvalue",
    "median", "nanmedian", "quantile", "nanquantile",
}


def _broadcast(shapes: list[tuple]) -> list[int] | None:
    """numpy broadcasting of ``shapes`` (torch.broadcast_shapes imports sympy on first use)."""
    ndim = max(len(s) for s in shapes)
    out = [1] * ndim
    for s in shapes:
        for i, n in enumerate(s, ndim - len(s)):
            if n != 1:
                if out[i] not in (1, n):
                    return None
                out[i] = n
    return out


def _kind(func) -> str:
    """How to check an operation before it runs: "view" (allocates nothing), "pointwise" (its
    result has the broadcast shape of its inputs), "reduction" (no larger than its input), or
    "meta" (run it on meta tensors first). Pointwise and reductions skip the meta run: torch's
    Python meta kernels import torch._dynamo (seconds) on first use."""
    schema = func._schema
    if not schema.is_mutable and any(r.alias_info is not None for r in schema.returns):
        return "view"
    tags = func.tags
    if torch.Tag.pointwise in tags:
        return "pointwise"
    if torch.Tag.reduction in tags:
        return "reduction"
    return "meta"


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
    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # Otherwise torch wraps __torch_dispatch__ in a dynamo "disable", whose first call imports
        # torch._dynamo: 800 modules, 4-5 s before the first expression. Nothing compiles here.
        return False

    def __init__(self, protected: list[torch.Tensor], limit_bytes: int,
                 cancelled: Callable[[], bool] | None = None, labels: list[str] | None = None):
        super().__init__()
        labels = labels or ["w"] * len(protected)
        self.protected: dict = {}
        for t, name in zip(protected, labels):
            k = storage_key(t)
            if k is not None:
                self.protected.setdefault(k, name)
        self.limit = int(limit_bytes)
        self.cancelled = cancelled

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.cancelled is not None and self.cancelled():
            raise Cancelled()
        self._check_writes(func, args, kwargs)
        name = func.overloadpacket.__name__
        kind = _kind(func)
        if kind == "pointwise":
            self._check_pointwise(func, args, kwargs)
        elif kind == "meta":
            try:
                meta_args = tree_map(_to_meta, args)
                meta_kwargs = {k: (torch.device("meta") if k == "device" else tree_map(_to_meta, v))
                               for k, v in kwargs.items()}
                meta_out = func(*meta_args, **meta_kwargs)
            except Exception:  # no meta kernel, or the size depends on the data
                if name not in _DATA_DEPENDENT:
                    raise Refused(f"{name} cannot be checked before it runs, so it is not allowed") from None
            else:
                self._check_sizes(func, meta_out)
        out = func(*args, **kwargs)
        if kind != "view":
            self._check_sizes(func, out)
        return out

    def _check_pointwise(self, func, args, kwargs) -> None:
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        if not tensors:
            return
        shape = _broadcast([tuple(t.shape) for t in tensors])
        if shape is None:
            return  # the operation itself reports the mismatch
        itemsize = 16 if any(t.is_complex() for t in tensors) else 8
        numel = 1
        for n in shape:
            numel *= n
        if numel * itemsize > self.limit:
            raise Refused(f"{func.overloadpacket.__name__} would make a tensor of {list(shape)} "
                          f"(up to {numel * itemsize / 2**20:,.0f} MiB), more than an expression "
                          f"on this tensor may use ({self.limit / 2**20:,.0f} MiB)")

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
                    what = self.protected[storage_key(t)]
                    raise Refused(f"{func.overloadpacket.__name__} would change {what} in place; an "
                                  "expression must compute new values (drop inplace / out "
                                  "arguments and methods ending in _)")

    def _check_sizes(self, func, out) -> None:
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and _nbytes(t) > self.limit:
                raise Refused(f"{func.overloadpacket.__name__} would make a tensor of "
                              f"{list(t.shape)} ({_nbytes(t) / 2**20:,.0f} MiB), more than an "
                              f"expression on this tensor may use ({self.limit / 2**20:,.0f} MiB)")
