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
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
from torch._utils import _flatten_dense_tensors  # one C++ flatten-and-concatenate

from .model import dtypes
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
COMPLEX_PARTS = ("abs", "real", "imag")


class _Source:
    """The distinct elements of a tensor and how many elements each one stands for.

    A stride-0 (expanded) axis repeats the same memory: its statistics come from one index of it,
    each element weighted by the repeat count. A sparse tensor contributes its stored values and
    its implicit zeros (as one weighted zero). Quantized, fp8 and raw-bit elements are converted
    chunk by chunk through ``dtypes.values``."""

    def __init__(self, t: torch.Tensor, part: str | None = None):
        t = t.detach()
        self.numel, self.dtype = t.numel(), t.dtype
        self.part = (part or "abs") if t.dtype.is_complex else None
        if self.part is not None and self.part not in COMPLEX_PARTS:
            raise ValueError(f"part must be one of {COMPLEX_PARTS}")
        self.extra_zeros = 0
        if dtypes.is_sparse(t):
            if t.layout == torch.sparse_coo:
                t = t.coalesce()
                base = t._values()
            else:
                base = t.values()
            self.extra_zeros = self.numel - base.numel()
        else:
            if dtypes.is_raw(t.dtype):
                t = dtypes.raw_view(t)
            base = t
            if base.dim() and any(st == 0 and n > 1 for st, n in zip(base.stride(), base.shape)):
                base = base[tuple(slice(0, 1) if st == 0 else slice(None)
                                  for st, n in zip(base.stride(), base.shape))]
        self.base = base
        _check_overlap(base)
        self.weight = base.numel() and max(1, (self.numel - self.extra_zeros) // base.numel())
        self.value_dtype = dtypes.value_dtype(self.dtype)
        if self.part is not None:
            self.value_dtype = torch.float64 if self.value_dtype == torch.complex128 else torch.float32

    @property
    def distinct(self) -> int:
        return self.base.numel() + (1 if self.extra_zeros else 0)

    def convert(self, c: torch.Tensor) -> torch.Tensor:
        if not (c.is_quantized or c.is_complex()):
            return c  # bf16 / fp8 / ints: copied into the float scratch buffer, no allocation
        c = dtypes.values(c)
        if self.part == "real":
            return c.real
        if self.part == "imag":
            return c.imag
        if self.part == "abs":
            return c.abs()
        return c

    def chunks(self, size: int) -> Callable[[], Iterable[tuple[torch.Tensor, int]]]:
        conv = _chunks(self.base, size, self.convert)

        def gen():
            for c in conv():
                yield c, self.weight
            if self.extra_zeros:
                yield torch.zeros(1, dtype=self.value_dtype), self.extra_zeros
        return gen


OVERLAP_LIMIT = 1 << 26   # elements an overlapping (as_strided) view may have beyond its storage


def _check_overlap(t: torch.Tensor) -> None:
    """A view whose elements far outnumber its memory (overlapping strides, from a hostile file)
    would take unbounded time element by element: refused in one line instead."""
    if t.layout != torch.strided or t.device.type == "meta" or t.numel() <= OVERLAP_LIMIT:
        return
    stored = t.untyped_storage().nbytes() // max(1, t.element_size())
    if t.numel() > 16 * max(1, stored):
        raise ValueError(f"an overlapping view of {t.numel():,} elements over {stored:,} stored "
                         f"ones")


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


#: dtypes whose contiguous tensors pool by plain concatenation (no conversion, no weights)
_PLAIN = {torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.uint8,
          torch.int16, torch.int32, torch.int64, torch.bool}
#: pooled small tensors are concatenated into batches of about this many elements, and kept
#: for the second pass when all of them together stay under ``KEEP_BATCHES`` elements
BATCH = 1 << 22
KEEP_BATCHES = 1 << 25


def _plain(t: torch.Tensor) -> bool:
    return t.dtype in _PLAIN and t.layout == torch.strided and t.is_cpu and t.is_contiguous()


def compute_stats_many(tensors: list[torch.Tensor], bins: int = 100, progress: Progress | None = None,
                       cancelled: Callable[[], bool] | None = None, part: str | None = None) -> Stats:
    """Pooled statistics of several tensors (a module's), as if concatenated.

    Plain contiguous tensors (most of them) are flattened into batches of ``BATCH`` elements
    in one C++ call per batch (a module of 100k tiny tensors is a handful of chunks, not 100k
    of them, each paying its own passes); the rest go through ``_Source`` one by one."""
    plain: list[torch.Tensor] = []
    sizes: list[int] = []
    others: list[_Source] = []
    for t in tensors:
        if _plain(t):
            plain.append(t)
            sizes.append(t.numel())
        else:
            others.append(_Source(t, part))
    plain_dtypes = {t.dtype for t in plain}
    total = sum(sizes) + sum(s.numel for s in others)
    kinds = {s.value_dtype for s in others} | plain_dtypes
    work = next(iter(kinds)) if len(kinds) == 1 else torch.float64
    batches = _Batches(plain, sizes, work, len(plain_dtypes) <= 1, cancelled)

    def chunks() -> Iterable[tuple[torch.Tensor, int]]:
        for b in batches:
            yield b, 1
        for s in others:
            yield from s.chunks(CHUNK)()
    out = _stats_of_chunks(chunks, total, work, bins, progress, cancelled,
                           batches.numel + sum(s.distinct for s in others))
    names = {dtypes.dtype_name(d) for d in plain_dtypes | {s.dtype for s in others}}
    out.dtype = names.pop() if len(names) == 1 else "float64"
    out.part = next((s.part for s in others if s.part), None)
    return out


class _Batches:
    """Plain tensors as flat batches of about ``BATCH`` elements (big ones as their own flat
    chunks); iterable once per pass, the flattened batches kept for the next pass when small."""

    def __init__(self, tensors: list[torch.Tensor], sizes: list[int], mixed: torch.dtype,
                 same: bool, cancelled):
        self.tensors, self.sizes, self.cancelled = tensors, sizes, cancelled
        self.same, self.mixed = same, mixed
        self.numel = sum(sizes)
        self.kept: list[torch.Tensor] | None = None

    def __iter__(self):
        if self.kept is None and self.numel <= KEEP_BATCHES:
            with torch.no_grad():  # a view of a parameter would otherwise record a graph
                self.kept = list(self._make())
        if self.kept is not None:
            yield from self.kept
        else:
            yield from self._make_detached()

    def _make_detached(self):
        with torch.no_grad():
            yield from self._make()

    def _make(self):
        start, size = 0, 0
        tensors = self.tensors
        for i, n in enumerate(self.sizes):
            if n >= BATCH:
                if start < i:
                    yield self._flat(tensors[start:i])
                flat = tensors[i].view(-1)
                for s in range(0, n, CHUNK):
                    yield flat[s:s + CHUNK]
                start, size = i + 1, 0
                continue
            size += n
            if size >= BATCH:
                yield self._flat(tensors[start:i + 1])
                start, size = i + 1, 0
        if start < len(tensors):
            yield self._flat(tensors[start:])

    def _flat(self, group: list[torch.Tensor]) -> torch.Tensor:
        if self.cancelled is not None and self.cancelled():
            raise Cancelled()
        if not self.same:
            group = [g.to(self.mixed) for g in group]
        return _flatten_dense_tensors(group)


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


def _sample(src: _Source, want: int) -> torch.Tensor:
    """About ``want`` converted elements of the source's base, in evenly spaced blocks."""
    base = src.base
    n = base.numel()
    if n <= want:
        return src.convert(base).reshape(-1)
    if base.is_quantized or base.dim() == 0:  # sample whole rows (slicing keeps channel scales)
        rows = base.shape[0]
        per_row = max(1, n // rows)
        take = max(1, min(rows, want // per_row))
        starts = np.linspace(0, rows - 1, take).astype(np.int64)
        return torch.cat([src.convert(base[s:s + 1]).reshape(-1) for s in starts.tolist()])
    blocks = max(1, min(PREVIEW_BLOCKS, want // 64))
    size = max(1, want // blocks)
    flat = _flat(base)
    starts = np.linspace(0, n - size, blocks).astype(np.int64)
    return torch.cat([src.convert(flat[s:s + size]).reshape(-1) for s in starts.tolist()])


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1) if t.is_contiguous() else t.contiguous().reshape(-1)


def _chunks(t: torch.Tensor, size: int, convert: Callable[[torch.Tensor], torch.Tensor]):
    """Converted flat chunks of ``t``; quantized tensors are cut along their first axis only
    (slices keep per-channel scales; reshapes do not)."""
    def gen() -> Iterable[torch.Tensor]:
        if t.numel() == 0:
            return
        if t.dim() == 0:
            yield convert(t).reshape(1)
            return
        if t.is_contiguous() and not t.is_quantized:
            flat = t.reshape(-1)
            for s in range(0, flat.numel(), size):
                yield convert(flat[s:s + size])
        else:  # walk the first axis so a non-contiguous view is never copied whole
            rows = max(1, size // max(1, t[0:1].numel()))
            for s in range(0, t.shape[0], rows):
                yield convert(t[s:s + rows]).reshape(-1)
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


def preview_stats_many(tensors: list[torch.Tensor], bins: int = 100, part: str | None = None) -> Stats:
    """Sampled statistics of several tensors pooled (exact when they are small enough)."""
    sources = [_Source(t, part) for t in tensors]
    total = sum(s.numel for s in sources)
    budget = PREVIEW_BLOCKS * PREVIEW_BLOCK
    if sum(s.distinct for s in sources) <= budget:
        return compute_stats_many(tensors, bins, part=part)
    kinds = {s.value_dtype for s in sources}
    work = _work_dtype(kinds.pop() if len(kinds) == 1 else torch.float64)
    parts = []  # (sample, weight): each sampled element stands for its tensor's share
    for s in sources:
        want = max(1, round(budget * s.numel / total)) if s.numel else 0
        if want:
            sample = _sample(s, want).to("cpu", work)  # pooled tensors may sit on several devices
            if sample.numel():
                parts.append((sample, max(1, round(s.numel / sample.numel()))))
    out = _stats_of_chunks(lambda: iter(parts), sum(p.numel() * w for p, w in parts), work, bins,
                           None, None)
    out.numel, out.sampled, out.approximate = total, sum(p.numel() for p, _w in parts), True
    names = {dtypes.dtype_name(t.dtype) for t in tensors}
    out.dtype = names.pop() if len(names) == 1 else "float64"
    return out


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
