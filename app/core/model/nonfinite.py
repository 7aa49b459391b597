"""Which tensors hold NaN or Inf: a scan of a whole document, cancellable, with progress."""
from __future__ import annotations

from typing import Callable, Iterable

import torch

from ..errors import Cancelled
from . import dtypes
from .tensor_entry import TensorEntry
from .ties import unique_entries

CHUNK = 1 << 22  # elements checked per step of a big tensor (progress and cancel between)


def has_nonfinite(t: torch.Tensor, cancelled: Callable[[], bool] | None = None) -> bool:
    """Whether ``t`` holds any NaN or Inf (integers, bools and raw bits never do)."""
    if dtypes.is_sparse(t):
        t = t.coalesce().values() if t.layout == torch.sparse_coo else t.values()
    if t.device.type == "meta" or dtypes.kind(t.dtype) not in ("float", "complex") \
            or dtypes.is_raw(t.dtype):
        return False
    if t.is_quantized:
        return False  # dequantized values come from finite integers and a finite scale
    flat = t.reshape(-1) if t.is_contiguous() else t.contiguous().reshape(-1)
    for s in range(0, flat.numel(), CHUNK):
        if cancelled is not None and cancelled():
            raise Cancelled()
        c = dtypes.values(flat[s:s + CHUNK])
        if not bool(torch.isfinite(c).all()):
            return True
    return False


def nonfinite_names(entries: Iterable[TensorEntry], progress=None,
                    cancelled: Callable[[], bool] | None = None) -> list[str]:
    """Names (and their tied aliases) of the tensors holding NaN or Inf, in order.
    ``progress(done, total)`` counts elements; ``cancelled()`` stops with ``Cancelled``."""
    uniq = unique_entries(entries)
    total = sum(e.numel for e in uniq) or 1
    done, out = 0, []
    for e in uniq:
        if cancelled is not None and cancelled():
            raise Cancelled()
        if has_nonfinite(e.tensor(), cancelled):
            out.append(e.name)
            out.extend(e.shared_with)
        done += e.numel
        if progress is not None:
            progress(done, total)
    return out
