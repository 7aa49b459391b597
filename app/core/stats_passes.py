"""The ``Stats`` record and the exact two-pass computation over chunks that fills it.

Pass 1 counts NaN/Inf/zeros and accumulates range, sum and sum of squares (float64); pass 2 makes
the histogram over the finite range. ``std`` is the sample standard deviation (Bessel's
correction), as ``torch.Tensor.std()``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .errors import Cancelled
from .model import dtypes


@dataclass
class Stats:
    numel: int
    dtype: str
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None      # sample standard deviation (Bessel), as torch.Tensor.std()
    l2: float | None = None
    nan: int = 0
    inf: int = 0
    zeros: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    edges: np.ndarray = field(default_factory=lambda: np.zeros(0))
    approximate: bool = False
    sampled: int = 0
    part: str | None = None       # complex tensors: "real", "imag" or "abs"

    @property
    def finite(self) -> int:
        return self.numel - self.nan - self.inf

    def as_dict(self) -> dict:
        return {"min": self.min, "max": self.max, "mean": self.mean, "std": self.std,
                "l2": self.l2, "nan": self.nan, "inf": self.inf, "zeros": self.zeros}


Progress = Callable[[int, int], None]


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype in (torch.float64, torch.int64, torch.uint64, torch.int32,
                                      torch.uint32) else torch.float32


class _Scratch:
    """Reusable buffers, so that a chunk never costs a fresh allocation (page faults)."""

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype
        self.buf = torch.empty(0, dtype=dtype)

    def get(self, k: int) -> torch.Tensor:
        if self.buf.numel() < k:
            self.buf = torch.empty(k, dtype=self.dtype)
        return self.buf[:k]

    def cast(self, c: torch.Tensor) -> torch.Tensor:
        """``c`` as a CPU tensor of this dtype (copied into the buffer when it is not one)."""
        if c.dtype == self.dtype and c.device.type == "cpu":
            return c
        out = self.get(c.numel())
        out.copy_(c)
        return out


def _histogram(c: torch.Tensor, bins: int, lo: float, scale: float, idx: _Scratch,
               tmp: _Scratch) -> torch.Tensor:
    """Counts of finite ``c`` in ``bins`` equal bins from ``lo``: bin = floor((x - lo) * scale),
    the top edge in the last bin. Faster than ``torch.histc`` (which also re-reads min/max)."""
    b = tmp.get(c.numel())
    torch.add(c, -lo, out=b)
    b.mul_(scale)
    i = idx.get(c.numel())
    i.copy_(b)  # truncation = floor, all values are >= 0
    i.clamp_(min=0, max=bins - 1)
    return torch.bincount(i, minlength=bins)


# Sum of squares minus n * mean**2 is used for the variance unless the mean is so large next to
# the spread (mean**2 > CANCEL * var) that float64 cancellation could cost digits; then pass 2
# sums the squared deviations from the exact mean.
CANCEL = 1e4


def _stats_of_chunks(chunks, numel: int, dtype: torch.dtype, bins: int, progress, cancelled,
                     reads: int | None = None) -> Stats:
    """Two passes over cache-sized chunks of (values, weight), each read from memory once per
    pass (the other operations on a chunk hit the cache); a chunk's every element stands for
    ``weight`` elements. Pass 1: NaN/Inf (only when a chunk's range is not finite), zeros, range,
    and the sum and sum of squares accumulated in float64 (float32 products are exact there).
    Pass 2: the histogram over the finite range. ``reads`` is the element count the passes read
    (progress), ``numel`` the count they stand for."""
    out = Stats(numel=numel, dtype=dtypes.dtype_name(dtype))
    if numel == 0:
        return out
    if dtype.is_complex:
        raise TypeError("statistics of complex tensors need a part: real, imag or abs")
    work = _work_dtype(dtype)
    cast, wide, tmp = _Scratch(work), _Scratch(torch.float64), _Scratch(work)
    n_fin, total_sum, total_sq, lo, hi = 0, 0.0, 0.0, math.inf, -math.inf
    nan = inf = zeros = 0
    done, total = 0, 2 * (numel if reads is None else reads)

    def tick(k: int) -> None:
        nonlocal done
        if cancelled is not None and cancelled():
            raise Cancelled()
        done += k
        if progress is not None:
            progress(done, total)

    def finite(c: torch.Tensor) -> torch.Tensor:
        c = cast.cast(c.detach())
        return c[torch.isfinite(c)] if nan or inf else c

    # pass 1: counts, range, sum and sum of squares
    for c, wt in chunks():
        k = c.numel()
        if not k:
            continue
        c = cast.cast(c.detach())
        cmin, cmax = (float(v) for v in torch.aminmax(c))
        if not (math.isfinite(cmin) and math.isfinite(cmax)):
            bad_nan = int(torch.isnan(c).sum())
            nan += wt * bad_nan
            inf += wt * (c.numel() - bad_nan - int(torch.isfinite(c).sum()))
            c = c[torch.isfinite(c)]
            if c.numel():
                cmin, cmax = (float(v) for v in torch.aminmax(c))
        kf = c.numel()
        if kf:
            zeros += wt * (kf - int(torch.count_nonzero(c)))
            lo, hi = min(lo, cmin), max(hi, cmax)
            w = wide.cast(c)
            total_sum += wt * float(w.sum())
            total_sq += wt * float(torch.dot(w, w))
            n_fin += wt * kf
        tick(k)
    out.nan, out.inf, out.zeros = nan, inf, zeros
    if not n_fin:
        if progress is not None:
            progress(total, total)
        return out
    mean = min(max(total_sum / n_fin, lo), hi)
    m2 = total_sq - n_fin * mean * mean
    exact_m2 = not (m2 > 0 and mean * mean * n_fin <= CANCEL * m2)

    # pass 2: histogram over the finite range (and squared deviations, if cancellation threatens)
    if dtype == torch.bool:
        bins, lo_e, hi_e = (2 if bins > 0 else 0), -0.5, 1.5
    elif lo == hi:
        lo_e, hi_e = lo - 0.5, hi + 0.5
    else:
        lo_e, hi_e = lo, hi
    counts = torch.zeros(max(bins, 0), dtype=torch.int64)
    if bins > 0 or exact_m2:
        idx, scale = _Scratch(torch.int32), bins / (hi_e - lo_e)
        if exact_m2:
            m2 = 0.0
        for c, wt in chunks():
            k = c.numel()
            if not k:
                continue
            c = finite(c)
            if c.numel():
                if bins > 0:
                    counts += wt * _histogram(c, bins, lo_e, scale, idx, tmp)
                if exact_m2:
                    w = wide.cast(c) - mean
                    m2 += wt * float(torch.dot(w, w))
            tick(k)
    if progress is not None:
        progress(total, total)
    out.min, out.max, out.mean = lo, hi, mean
    out.std = math.sqrt(max(0.0, m2) / (n_fin - 1)) if n_fin > 1 else None
    out.l2 = math.sqrt(total_sq)
    if bins > 0:
        out.counts = counts.numpy()
        out.edges = np.linspace(lo_e, hi_e, bins + 1)
    return out
