"""The figures of a float32 / bfloat16 / float16 chunk pair in float32 arithmetic.

Fewer, lighter passes than float64 (no widening copies): a2, b2 and d2 are float32 dot products
of the chunk (single thread), added up across chunks in float64 by ``tensor_diff``. Exact:
``n_diff`` (a float compare), and ``max_abs`` once ``tensor_diff`` redoes the few chunks that
may hold the largest difference (``exact_max``; ``|a - b|`` rounded to float32 is within 2**-24
of the exact one, relatively). Within ``sumsq_rel_error(n)``: a2, b2, d2 (any float32 summation
order of n squares errs by at most about (n + 2) * 2**-24 relatively, d's rounding included; BLAS
lanes make it far smaller, see tests/core/test_diff_accuracy.py). ``figures`` returns None where
float32 cannot keep that bound (NaN / Inf, squares that overflow or underflow): the caller then
takes the float64 path, which owns those cases.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .chunk_figures import ChunkFigures

SINGLE = (torch.float16, torch.bfloat16, torch.float32)
#: below n * TINY a float32 sum of n squares may have lost subnormal or underflowed squares
#: (each costs at most 2**-149) beyond 2**-24 of the sum: such a chunk goes to float64
TINY = 2.0 ** -125


def sumsq_rel_error(n: int) -> float:
    """The bound on the relative error of a2, b2, d2 of a chunk of ``n`` elements: Higham's
    gamma_{n+2} for float32 (n - 1 additions, the square, d's own rounding counted twice)."""
    g = (n + 2) * 2.0 ** -24
    return g / (1 - g)


class SingleMath:
    """One thread's float32 scratch buffers and the float32 arithmetic of a chunk pair."""

    def __init__(self) -> None:
        self._bufs: list[torch.Tensor] = [torch.empty(0)] * 3

    def _buf(self, i: int, n: int) -> torch.Tensor:
        if self._bufs[i].numel() < n:
            self._bufs[i] = torch.empty(n)
        return self._bufs[i][:n]

    def _single(self, p: torch.Tensor, i: int) -> torch.Tensor:
        return p if p.dtype == torch.float32 else self._buf(i, p.numel()).copy_(p)

    def sumsq(self, x: torch.Tensor) -> float | None:
        """float32 x . x, or None where that is not within the bound (or not finite)."""
        s = float(torch.dot(x, x))
        return s if math.isfinite(s) and s >= x.numel() * TINY else None

    def equal_sumsq(self, p: torch.Tensor) -> float | None:
        """a2 (= b2) of a bit-equal chunk: what ``figures`` gives it, or None where it would."""
        return self.sumsq(self._single(p, 0))

    def figures(self, pa: torch.Tensor, pb: torch.Tensor) -> ChunkFigures | None:
        n = pa.numel()
        ta, tb = self._single(pa, 0), self._single(pb, 1)
        a2 = self.sumsq(ta)
        b2 = None if a2 is None else self.sumsq(tb)
        if b2 is None:
            return None
        d = self._buf(2, n)
        fd = d.numpy()
        np.abs(np.subtract(ta.numpy(), tb.numpy(), out=fd), out=fd)
        # finite floats: a - b == 0 exactly when a == b (gradual underflow; -0 == 0), and |d|
        # has no sign bit, so its nonzero bit patterns are the places that differ
        n_diff = int(np.count_nonzero(fd.view(np.int32)))
        if n_diff == 0:
            return ChunkFigures(0, 0, 0, 0.0, a2, b2, 0.0)
        d2 = self.sumsq(d)  # overflow (|a - b| > float32 max) is caught here too
        if d2 is None:
            return None
        return ChunkFigures(n_diff, 0, 0, float(fd.max()), a2, b2, d2, rounded=True)


def exact_max(pa: torch.Tensor, pb: torch.Tensor, top: float) -> float:
    """The exact (float64) largest |a - b| of a finite chunk whose float32 largest is ``top``.

    Only the places where the float32 |a - b| is ``top`` can hold it (rounding is monotonic).
    A float32 difference s = a - b is exact iff a - s == b and s + b == a, both in float32 (the
    Fast2Sum error term, taken from whichever side is larger in magnitude, is zero), so float64
    is only needed at the inexact places: ties of exact differences (quantized weights, shifts
    by an ulp) cost a few float32 passes, not a float64 chunk."""
    fa = pa.numpy() if pa.dtype == torch.float32 else pa.float().numpy()
    fb = pb.numpy() if pb.dtype == torch.float32 else pb.float().numpy()
    s = np.subtract(fa, fb)
    at_top = np.abs(s) == np.float32(top)
    exact = (np.subtract(fa, s) == fb) & (np.add(s, fb) == fa)
    inexact = np.flatnonzero(at_top & ~exact)
    best = top if np.count_nonzero(at_top & exact) else 0.0
    if inexact.size:
        d = np.abs(fa[inexact].astype(np.float64) - fb[inexact].astype(np.float64))
        best = max(best, float(d.max()))
    return best
