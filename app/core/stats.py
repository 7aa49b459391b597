"""Summary statistics and a histogram of a tensor, in bounded memory, cancellable.

``compute_stats`` is exact and reads the tensor in cache-sized chunks, twice: pass 1 counts
NaN/Inf/zeros and accumulates range, sum and sum of squares (float64); pass 2 makes the histogram
over the finite range. It costs about 1.4x ``torch.histc`` + ``torch.aminmax`` (the floor: a
histogram needs its range first). ``preview_stats`` reads evenly spaced contiguous blocks and is
marked approximate; it is what a huge tensor shows at once while the exact result is computed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch

from .errors import Cancelled

CHUNK = 1 << 20          # elements per chunk: 4 MB of float32, stays in cache
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
    i.clamp_(max=bins - 1)
    return torch.bincount(i, minlength=bins)


# Sum of squares minus n * mean**2 is used for the variance unless the mean is so large next to
# the spread (mean**2 > CANCEL * var) that float64 cancellation could cost digits; then pass 2
# sums the squared deviations from the exact mean.
CANCEL = 1e4


def _stats_of_chunks(chunks, numel: int, dtype: torch.dtype, bins: int, progress, cancelled) -> Stats:
    """Two passes over cache-sized chunks, each read from memory once per pass (the other
    operations on a chunk hit the cache). Pass 1: NaN/Inf (only when a chunk's range is not
    finite), zeros, range, and the sum and sum of squares accumulated in float64 (float32
    products are exact there). Pass 2: the histogram over the finite range."""
    out = Stats(numel=numel, dtype=str(dtype).removeprefix("torch."))
    if numel == 0:
        return out
    if dtype.is_complex:
        raise TypeError("statistics of complex tensors are not supported")
    work = _work_dtype(dtype)
    cast, wide, tmp = _Scratch(work), _Scratch(torch.float64), _Scratch(work)
    n_fin, total_sum, total_sq, lo, hi = 0, 0.0, 0.0, math.inf, -math.inf
    nan = inf = zeros = 0
    done, total = 0, 2 * numel

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
    for c in chunks():
        k = c.numel()
        c = cast.cast(c.detach())
        cmin, cmax = (float(v) for v in torch.aminmax(c))
        if not (math.isfinite(cmin) and math.isfinite(cmax)):
            bad_nan = int(torch.isnan(c).sum())
            nan += bad_nan
            inf += c.numel() - bad_nan - int(torch.isfinite(c).sum())
            c = c[torch.isfinite(c)]
            if c.numel():
                cmin, cmax = (float(v) for v in torch.aminmax(c))
        kf = c.numel()
        if kf:
            zeros += kf - int(torch.count_nonzero(c))
            lo, hi = min(lo, cmin), max(hi, cmax)
            w = wide.cast(c)
            total_sum += float(w.sum())
            total_sq += float(torch.dot(w, w))
            n_fin += kf
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
        for c in chunks():
            k = c.numel()
            c = finite(c)
            if c.numel():
                if bins > 0:
                    counts += _histogram(c, bins, lo_e, scale, idx, tmp)
                if exact_m2:
                    w = wide.cast(c) - mean
                    m2 += float(torch.dot(w, w))
            tick(k)
    if progress is not None:
        progress(total, total)
    out.min, out.max, out.mean = lo, hi, mean
    out.std = math.sqrt(max(0.0, m2) / n_fin)
    out.l2 = math.sqrt(total_sq)
    if bins > 0:
        out.counts = counts.numpy()
        out.edges = np.linspace(lo_e, hi_e, bins + 1)
    return out


def preview_stats_many(tensors: list[torch.Tensor], bins: int = 100) -> Stats:
    """Sampled statistics of several tensors pooled (exact when they are small enough)."""
    total = sum(t.numel() for t in tensors)
    budget = PREVIEW_BLOCKS * PREVIEW_BLOCK
    if total <= budget:
        return compute_stats_many(tensors, bins)
    dtype = tensors[0].dtype if len({t.dtype for t in tensors}) == 1 else torch.float64
    work = _work_dtype(dtype)
    parts = []
    for t in tensors:
        n = t.numel()
        want = max(1, round(budget * n / total)) if n else 0
        if not want:
            continue
        flat = _flat(t.detach())
        if n <= want:
            parts.append(flat.to("cpu", work))  # pooled tensors may sit on several devices
            continue
        blocks = max(1, min(PREVIEW_BLOCKS, want // 64))
        size = max(1, want // blocks)
        starts = np.linspace(0, n - size, blocks).astype(np.int64)
        parts.append(torch.cat([flat[s:s + size] for s in starts.tolist()]).to("cpu", work))
    sample = torch.cat(parts)
    s = compute_stats(sample, bins)
    scale = total / sample.numel()
    s.numel, s.sampled, s.approximate = total, sample.numel(), True
    s.dtype = str(dtype).removeprefix("torch.")
    s.nan, s.inf, s.zeros = round(s.nan * scale), round(s.inf * scale), round(s.zeros * scale)
    if s.l2 is not None:
        s.l2 *= math.sqrt(scale)
    return s


def find_first(t: torch.Tensor, kind: str = "nan", cancelled: Callable[[], bool] | None = None,
               chunk: int = CHUNK) -> tuple[int, ...] | None:
    """Index of the first NaN (``kind="nan"``) or infinite (``"inf"``) element of ``t`` in
    row-major order, or None. Reads ``t`` in chunks; stops at the first hit."""
    if not (t.dtype.is_floating_point or t.dtype.is_complex):
        return None
    test = torch.isnan if kind == "nan" else torch.isinf
    offset = 0
    for c in _chunks(t.detach(), chunk)():
        if cancelled is not None and cancelled():
            raise Cancelled()
        hit = test(c)
        if bool(hit.any()):
            flat = offset + int(hit.to(torch.uint8).argmax())
            return tuple(int(i) for i in np.unravel_index(flat, tuple(t.shape))) if t.dim() else ()
        offset += c.numel()
    return None
