"""Summary statistics and a histogram of a tensor, in bounded memory, cancellable.

``compute_stats`` is exact and reads the tensor in cache-sized chunks, twice: pass 1 counts
NaN/Inf/zeros and accumulates range, sum and sum of squares (float64); pass 2 makes the histogram
over the finite range. It costs about 1.4x ``torch.histc`` + ``torch.aminmax`` (the floor: a
histogram needs its range first). ``preview_stats`` reads evenly spaced contiguous blocks and is
marked approximate; it is what a huge tensor shows at once while the exact result is computed.

Every dtype and layout goes through ``_Source``: values as ``app.core.model.dtypes`` defines them
(quantized dequantized, fp8 as floats, complex by part), an expanded (stride-0) tensor read once
per distinct element and weighted, a sparse one as its stored values plus its implicit zeros.
``std`` is the sample standard deviation (Bessel's correction), as ``torch.Tensor.std()``.

The work is split by job: ``stats_source`` (what is read), ``stats_passes`` (the ``Stats`` record
and the two passes), ``stats_pooled`` (several tensors at once); their public names (and the
private ones other modules use) are importable from here.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from .errors import Cancelled
from .model import dtypes
from .stats_passes import CANCEL, Progress, Stats, _histogram, _Scratch, _stats_of_chunks, _work_dtype
from .stats_pooled import (BATCH, KEEP_BATCHES, _Batches, _plain, compute_stats_many,
                           preview_stats_many)
from .stats_source import (CHUNK, COMPLEX_PARTS, OVERLAP_LIMIT, PREVIEW_BLOCK, PREVIEW_BLOCKS,
                           _check_overlap, _chunks, _flat, _sample, _Source)

__all__ = [
    "BATCH", "CANCEL", "CHUNK", "COMPLEX_PARTS", "KEEP_BATCHES", "OVERLAP_LIMIT", "PREVIEW_BLOCK",
    "PREVIEW_BLOCKS", "Progress", "Stats", "compute_stats", "compute_stats_many",
    "distinct_elements", "find_first", "preview_stats", "preview_stats_many",
    "_Batches", "_Scratch", "_Source", "_check_overlap", "_chunks", "_flat", "_histogram",
    "_plain", "_sample", "_stats_of_chunks", "_work_dtype",
]


def distinct_elements(t: torch.Tensor) -> int:
    """How many elements statistics of ``t`` read (its distinct memory, for expanded tensors)."""
    return _Source(t).distinct


def compute_stats(t: torch.Tensor, bins: int = 100, progress: Progress | None = None,
                  cancelled: Callable[[], bool] | None = None, chunk: int = CHUNK,
                  part: str | None = None) -> Stats:
    """Exact statistics of ``t`` (any dtype, layout, device). Calls ``progress(done, total)``.
    For complex tensors ``part`` picks "abs" (default), "real" or "imag"."""
    src = _Source(t, part)
    out = _stats_of_chunks(src.chunks(chunk), src.numel, src.value_dtype, bins, progress,
                           cancelled, src.distinct)
    out.dtype, out.part = dtypes.dtype_name(t.dtype), src.part
    return out


def preview_stats(t: torch.Tensor, bins: int = 100, part: str | None = None) -> Stats:
    """Statistics of a sample of ``t`` (exact when its distinct elements are few enough)."""
    src = _Source(t, part)
    if src.distinct <= PREVIEW_BLOCKS * PREVIEW_BLOCK:
        return compute_stats(t, bins, part=part)
    sample = _sample(src, PREVIEW_BLOCKS * PREVIEW_BLOCK)
    s = compute_stats(sample, bins)
    scale = src.numel / sample.numel()
    s.numel, s.sampled, s.approximate = src.numel, sample.numel(), True
    s.dtype, s.part = dtypes.dtype_name(t.dtype), src.part
    s.nan, s.inf, s.zeros = round(s.nan * scale), round(s.inf * scale), round(s.zeros * scale)
    if s.l2 is not None:
        s.l2 *= math.sqrt(scale)
    return s


def find_first(t: torch.Tensor, kind: str = "nan", cancelled: Callable[[], bool] | None = None,
               chunk: int = CHUNK) -> tuple[int, ...] | None:
    """Index of the first NaN (``kind="nan"``) or infinite (``"inf"``) element of ``t`` in
    row-major order, or None. Reads ``t`` in chunks; stops at the first hit."""
    if dtypes.is_sparse(t) or t.is_quantized or dtypes.kind(t.dtype) not in ("float", "complex"):
        return None
    src = _Source(t)  # an expanded tensor is searched in its distinct elements: same indices
    t = src.base
    test = torch.isnan if kind == "nan" else torch.isinf
    offset = 0
    for c in _chunks(t, chunk, dtypes.values)():
        if cancelled is not None and cancelled():
            raise Cancelled()
        hit = test(c)
        if bool(hit.any()):
            flat = offset + int(hit.to(torch.uint8).argmax())
            return tuple(int(i) for i in np.unravel_index(flat, tuple(t.shape))) if t.dim() else ()
        offset += c.numel()
    return None
