"""Pooled statistics of several tensors (a module's), as if concatenated: exact and sampled."""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch._utils import _flatten_dense_tensors  # one C++ flatten-and-concatenate

from .errors import Cancelled
from .model import dtypes
from .stats_passes import Progress, Stats, _stats_of_chunks, _work_dtype
from .stats_source import CHUNK, PREVIEW_BLOCK, PREVIEW_BLOCKS, _sample, _Source

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
