"""Which range and bins a histogram shows, and its counts over that range, in bounded memory.

A few huge outliers squash a full-range histogram into one bar: ``percentile_range`` finds the
0.1–99.9th percentiles from a bounded sample (exact when the tensors are small), and
``outliers_dominate`` says when that robust range should be the default. Integer tensors get
integer-aligned bins (``integer_edges``: one bin per integer while they fit), bool two bins.
``range_histogram`` counts exactly over any edges, chunk by chunk (cancellable, with progress),
with the elements below and above the range counted apart so that the plot can show them at its
edges. ``sample_histogram`` estimates the same from the sample, for an instant preview.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .errors import Cancelled
from .stats_passes import Stats, _Scratch
from .stats_source import CHUNK, _sample, _Source

ROBUST_QUANTILES = (0.001, 0.999)   # the robust range: 0.1th to 99.9th percentile
SAMPLE = 1 << 16                    # elements read for the percentiles (a few ms to sort)
SQUASH = 10.0                       # full range this many times the robust one: outliers dominate
INTEGER_BINS_MIN = 256              # one bin per integer up to max(bins, this) integers (all of int8)

RANGE_MODES = ("auto", "full", "robust")


@dataclass
class ValueSample:
    """Finite values of some tensors (float64) and how many elements each value stands for."""
    values: torch.Tensor
    weights: torch.Tensor
    exact: bool          # every element was read (the weights are repeat counts, not estimates)

    @property
    def total(self) -> float:
        return float(self.weights.sum()) if self.weights.numel() else 0.0


def value_sample(tensors: list[torch.Tensor], part: str | None = None,
                 want: int = SAMPLE) -> ValueSample:
    """Up to about ``want`` finite values of ``tensors`` pooled, each tensor sampled in evenly
    spaced blocks in proportion to its size; all of them (exact) when they are few enough."""
    sources = [_Source(t, part) for t in tensors]
    total = sum(s.numel for s in sources) or 1
    exact = sum(s.distinct for s in sources) <= want
    values, weights = [], []
    for s in sources:
        if not s.numel:
            continue
        stored = s.numel - s.extra_zeros
        if exact:
            v = s.convert(s.base).reshape(-1) if s.base.numel() else torch.zeros(0)
            w = float(s.weight)
        else:
            v = _sample(s, max(1, round(want * s.numel / total))) if s.base.numel() \
                else torch.zeros(0)
            w = stored / max(1, v.numel())
        v = v.detach().to("cpu", torch.float64).reshape(-1)
        v = v[torch.isfinite(v)]
        values.append(v)
        weights.append(torch.full((v.numel(),), w, dtype=torch.float64))
        if s.extra_zeros:  # a sparse tensor's implicit zeros, as one weighted zero
            values.append(torch.zeros(1, dtype=torch.float64))
            weights.append(torch.tensor([float(s.extra_zeros)], dtype=torch.float64))
    if not values:
        return ValueSample(torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64),
                           exact)
    return ValueSample(torch.cat(values), torch.cat(weights), exact)


def percentile_range(sample: ValueSample,
                     quantiles: tuple[float, float] = ROBUST_QUANTILES) -> tuple[float, float] | None:
    """The weighted ``quantiles`` of the sample (lower, upper), or None when it is empty."""
    if not sample.values.numel():
        return None
    order = torch.argsort(sample.values)
    v, cum = sample.values[order], torch.cumsum(sample.weights[order], 0)
    total = float(cum[-1])
    out = []
    for q in quantiles:
        i = int(torch.searchsorted(cum, torch.tensor([q * total], dtype=torch.float64)).item())
        out.append(float(v[min(i, v.numel() - 1)]))
    return out[0], out[1]


def outliers_dominate(full: tuple[float, float], robust: tuple[float, float] | None,
                      squash: float = SQUASH) -> bool:
    """True when the robust range is a small part of the full one (``squash`` times smaller):
    a full-range histogram would put almost every element into a bin or two."""
    if robust is None:
        return False
    lo, hi = full
    rlo, rhi = robust
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return False
    if rhi <= rlo:  # almost all elements equal, a few far away
        return rlo > lo or rhi < hi
    return (hi - lo) > squash * (rhi - rlo)


def is_integer_dtype(dtype_name: str) -> bool:
    return dtype_name.startswith(("int", "uint")) or dtype_name == "bool"


def integer_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    """Edges half-way between integers, so that every bin holds the same number of whole
    integers (no comb): one bin per integer while there are at most ``max(bins,
    INTEGER_BINS_MIN)`` of them, else about ``bins`` bins of ``ceil(span / bins)`` integers."""
    lo, hi = math.floor(lo), math.ceil(hi)
    span = hi - lo + 1
    width = 1 if span <= max(bins, INTEGER_BINS_MIN) else math.ceil(span / max(bins, 1))
    n = math.ceil(span / width)
    return lo - 0.5 + width * np.arange(n + 1, dtype=np.float64)


def float_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, max(bins, 1) + 1)


def view_edges(dtype_name: str, lo: float, hi: float, bins: int) -> np.ndarray:
    """The bin edges a tensor of ``dtype_name`` shows between ``lo`` and ``hi``."""
    if dtype_name == "bool":
        return np.array([-0.5, 0.5, 1.5])
    if is_integer_dtype(dtype_name):
        return integer_edges(lo, hi, bins)
    return float_edges(lo, hi, bins)


@dataclass
class RangeCounts:
    """Counts over ``edges`` and the elements outside them (finite values only)."""
    edges: np.ndarray
    counts: np.ndarray
    below: int = 0
    above: int = 0
    approximate: bool = False


def _count(v: torch.Tensor, w: torch.Tensor | float, edges: np.ndarray):
    lo, hi, n = float(edges[0]), float(edges[-1]), len(edges) - 1
    below, above = v < lo, v > hi
    inside = ~(below | above)
    idx = ((v[inside] - lo) * (n / (hi - lo))).floor().clamp_(0, n - 1).to(torch.int64)
    if isinstance(w, torch.Tensor):
        return (torch.bincount(idx, weights=w[inside], minlength=n),
                float(w[below].sum()), float(w[above].sum()))
    return (torch.bincount(idx, minlength=n).double() * w,
            float(below.sum()) * w, float(above.sum()) * w)


def sample_histogram(sample: ValueSample, edges: np.ndarray) -> RangeCounts:
    """Counts over ``edges`` estimated from the sample (exact when the sample is)."""
    counts, below, above = _count(sample.values, sample.weights, edges)
    return RangeCounts(edges, np.rint(counts.numpy()).astype(np.int64), round(below),
                       round(above), approximate=not sample.exact)


def range_histogram(tensors: list[torch.Tensor], edges: np.ndarray, part: str | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    cancelled: Callable[[], bool] | None = None) -> RangeCounts:
    """Exact counts of the finite elements of ``tensors`` over ``edges`` (equal widths), read in
    cache-sized chunks: each chunk becomes bin codes (0 below, 1..n inside; the top edge
    belongs to the last bin, as in ``np.histogram``) in reused buffers and one ``bincount``;
    the elements above are counted apart and taken out of the last bin. Values are placed in
    float32 unless the tensor is float64 or a wide integer (float32 would round them); as in
    ``stats.compute_stats``, a value within a float32 rounding of an edge may land in the
    neighbouring bin."""
    sources = [_Source(t, part) for t in tensors]
    total, done = sum(s.distinct for s in sources), 0
    n = len(edges) - 1
    lo, scale = float(edges[0]), n / (float(edges[-1]) - float(edges[0]))
    hi = float(edges[-1])
    counts = torch.zeros(n + 1, dtype=torch.float64)
    above = 0.0
    for s in sources:
        work = torch.float64 if s.value_dtype in (torch.float64, torch.int64, torch.uint64,
                                                  torch.int32, torch.uint32) else torch.float32
        cast, tmp, idx, over = (_Scratch(work), _Scratch(work), _Scratch(torch.int32),
                                _Scratch(torch.bool))
        for c, wt in s.chunks(CHUNK)():
            if cancelled is not None and cancelled():
                raise Cancelled()
            done += c.numel()
            v = cast.cast(c.detach().reshape(-1))
            if not v.numel():
                continue
            vmin, vmax = (float(x) for x in torch.aminmax(v))  # one pass, no allocation
            if not (math.isfinite(vmin) and math.isfinite(vmax)):
                v = v[torch.isfinite(v)]
                vmax = float(v.max()) if v.numel() else -math.inf
            if v.numel():
                b = tmp.get(v.numel())
                torch.sub(v, lo, out=b)
                b.mul_(scale).floor_().clamp_(-1, n - 1).add_(1)
                i = idx.get(v.numel())
                i.copy_(b)
                counts += float(wt) * torch.bincount(i, minlength=n + 1).double()
                if vmax > hi:
                    above += float(wt) * int(torch.count_nonzero(
                        torch.gt(v, hi, out=over.get(v.numel()))))
            if progress is not None:
                progress(done, total)
    counts[n] -= above
    k = np.rint(counts.numpy()).astype(np.int64)
    return RangeCounts(edges, k[1:].copy(), int(k[0]), round(above))


@dataclass
class ViewPlan:
    """What the histogram shows: ``shown`` is "full" or "robust" (``lo`` … ``hi``); ``counts``
    None means the statistics' own full-range histogram stands as it is."""
    shown: str
    lo: float
    hi: float
    integer: bool
    counts: RangeCounts | None = None


def plan_view(stats: Stats, tensors: list[torch.Tensor], part: str | None, mode: str, bins: int,
              exact: bool = False, progress: Callable[[int, int], None] | None = None,
              cancelled: Callable[[], bool] | None = None) -> ViewPlan:
    """Pick the range (``mode``: "auto", "full" or "robust") and bins for ``stats`` (of
    ``tensors``, which have finite values) and count over them: from the sample, or exactly
    (``exact``, reading every element) when the sample is not all of them."""
    integer = is_integer_dtype(stats.dtype) and not stats.part
    if mode == "full" and not integer:
        return ViewPlan("full", stats.min, stats.max, False)
    sample = value_sample(tensors, part)
    robust = percentile_range(sample) if mode != "full" else None
    use_robust = robust is not None and (
        mode == "robust" or (mode == "auto" and outliers_dominate((stats.min, stats.max), robust)))
    if not (use_robust or integer):
        return ViewPlan("full", stats.min, stats.max, False)
    lo, hi = robust if use_robust else (stats.min, stats.max)
    edges = view_edges(stats.dtype if integer else "float", lo, hi, bins)
    counts = sample_histogram(sample, edges)
    if exact and counts.approximate:
        counts = range_histogram(tensors, edges, part, progress, cancelled)
    return ViewPlan("robust" if use_robust else "full", lo, hi, integer, counts)


__all__ = ["RANGE_MODES", "ROBUST_QUANTILES", "RangeCounts", "ValueSample", "ViewPlan", "plan_view",
           "float_edges", "integer_edges", "is_integer_dtype", "outliers_dominate",
           "percentile_range", "range_histogram", "sample_histogram", "value_sample", "view_edges"]
