"""Summary statistics and a histogram of a tensor, in bounded memory, cancellable.

``compute_stats`` is exact and reads the tensor in chunks (two passes: moments, then the
histogram over the finite range). ``preview_stats`` reads evenly spaced contiguous blocks and is
marked approximate; it is what a huge tensor shows at once while the exact result is computed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch

from .errors import Cancelled

CHUNK = 1 << 22          # elements per chunk: 16 MB of float32
PREVIEW_BLOCKS = 256
PREVIEW_BLOCK = 4096     # 1M sampled elements in all


@dataclass
class Stats:
    numel: int
    dtype: str
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    l2: float | None = None
    nan: int = 0
    inf: int = 0
    zeros: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    edges: np.ndarray = field(default_factory=lambda: np.zeros(0))
    approximate: bool = False
    sampled: int = 0

    @property
    def finite(self) -> int:
        return self.numel - self.nan - self.inf

    def as_dict(self) -> dict:
        return {"min": self.min, "max": self.max, "mean": self.mean, "std": self.std,
                "l2": self.l2, "nan": self.nan, "inf": self.inf, "zeros": self.zeros}


Progress = Callable[[int, int], None]


def compute_stats(t: torch.Tensor, bins: int = 100, progress: Progress | None = None,
                  cancelled: Callable[[], bool] | None = None, chunk: int = CHUNK) -> Stats:
    """Exact statistics of ``t`` (any dtype, any device). Calls ``progress(done, total)``."""
    return _stats_of_chunks(_chunks(t, chunk), t.numel(), t.dtype, bins, progress, cancelled)


def compute_stats_many(tensors: list[torch.Tensor], bins: int = 100, progress: Progress | None = None,
                       cancelled: Callable[[], bool] | None = None) -> Stats:
    """Pooled statistics of several tensors (a module's), as if concatenated."""
    total = sum(t.numel() for t in tensors)
    dtype = tensors[0].dtype if len({t.dtype for t in tensors}) == 1 else torch.float64

    def chunks() -> Iterable[torch.Tensor]:
        for t in tensors:
            yield from _chunks(t, CHUNK)()
    return _stats_of_chunks(chunks, total, dtype, bins, progress, cancelled)


def preview_stats(t: torch.Tensor, bins: int = 100) -> Stats:
    """Statistics of a sample of ``t`` (exact when the tensor is small enough)."""
    n = t.numel()
    if n <= PREVIEW_BLOCKS * PREVIEW_BLOCK:
        return compute_stats(t, bins)
    flat = _flat(t)
    starts = np.linspace(0, n - PREVIEW_BLOCK, PREVIEW_BLOCKS).astype(np.int64)
    sample = torch.cat([flat[s:s + PREVIEW_BLOCK] for s in starts.tolist()])
    s = compute_stats(sample, bins)
    scale = n / sample.numel()
    s.numel, s.sampled, s.approximate = n, sample.numel(), True
    s.nan, s.inf, s.zeros = round(s.nan * scale), round(s.inf * scale), round(s.zeros * scale)
    if s.l2 is not None:
        s.l2 *= math.sqrt(scale)
    return s


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1) if t.is_contiguous() else t.contiguous().reshape(-1)


def _chunks(t: torch.Tensor, size: int):
    def gen() -> Iterable[torch.Tensor]:
        if t.dim() == 0:
            yield t.reshape(1)
            return
        if t.is_contiguous():
            flat = t.reshape(-1)
            for s in range(0, flat.numel(), size):
                yield flat[s:s + size]
        else:  # walk the first axis so a non-contiguous view is never copied whole
            rows = max(1, size // max(1, t[0].numel()))
            for s in range(0, t.shape[0], rows):
                yield t[s:s + rows].reshape(-1)
    return gen


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype in (torch.float64, torch.int64, torch.uint64, torch.int32,
                                      torch.uint32) else torch.float32


def _stats_of_chunks(chunks, numel: int, dtype: torch.dtype, bins: int, progress, cancelled) -> Stats:
    out = Stats(numel=numel, dtype=str(dtype).removeprefix("torch."))
    if numel == 0:
        return out
    if dtype.is_complex:
        raise TypeError("statistics of complex tensors are not supported")
    work = _work_dtype(dtype)
    n_fin, mean, m2, lo, hi = 0, 0.0, 0.0, math.inf, -math.inf
    nan = inf = zeros = 0
    done, total = 0, 2 * numel

    def tick(k: int) -> None:
        nonlocal done
        if cancelled is not None and cancelled():
            raise Cancelled()
        done += k
        if progress is not None:
            progress(done, total)

    # pass 1: counts, range and moments (Chan's parallel combination of per-chunk mean/M2)
    for c in chunks():
        c = c.to(work) if c.dtype != work else c
        k = c.numel()
        if not torch.isfinite(c.sum()):
            bad_nan = int(torch.isnan(c).sum())
            bad_inf = int(torch.isinf(c).sum())
            nan += bad_nan
            inf += bad_inf
            if bad_nan or bad_inf:
                c = c[torch.isfinite(c)]
        zeros += int(c.numel() - torch.count_nonzero(c))
        kf = c.numel()
        if kf:
            cmin, cmax = torch.aminmax(c)
            lo, hi = min(lo, float(cmin)), max(hi, float(cmax))
            cmean = float(c.sum(dtype=torch.float64)) / kf
            cm2 = float(torch.linalg.vector_norm(c - cmean, dtype=torch.float64)) ** 2 if kf > 1 else 0.0
            delta = cmean - mean
            tot = n_fin + kf
            mean += delta * kf / tot
            m2 += cm2 + delta * delta * n_fin * kf / tot
            n_fin = tot
        tick(k)
    if n_fin:
        out.min, out.max, out.mean = lo, hi, mean
        out.std = math.sqrt(m2 / n_fin)
        out.l2 = math.sqrt(max(0.0, m2 + n_fin * mean * mean))
    out.nan, out.inf, out.zeros = nan, inf, zeros

    # pass 2: histogram over the finite range
    if n_fin and bins > 0:
        if dtype == torch.bool:
            bins, lo_e, hi_e = 2, -0.5, 1.5
        elif lo == hi:
            lo_e, hi_e = lo - 0.5, hi + 0.5
        else:
            lo_e, hi_e = lo, hi
        counts = torch.zeros(bins, dtype=torch.float64)
        for c in chunks():
            c = c.to(work) if c.dtype != work else c
            k = c.numel()
            if nan or inf:
                c = c[torch.isfinite(c)]
            if c.numel():
                counts += torch.histc(c, bins=bins, min=lo_e, max=hi_e).to(torch.float64).cpu()
            tick(k)
        out.counts = counts.round().to(torch.int64).numpy()
        out.edges = np.linspace(lo_e, hi_e, bins + 1)
    elif progress is not None:
        progress(total, total)
    return out
