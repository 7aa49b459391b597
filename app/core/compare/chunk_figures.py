"""The figures of one pair of chunks, computed in float64 (complex128 for complex); float32,
bfloat16 and float16 chunks without tolerance go to ``single_figures`` first.

``ChunkMath`` holds one thread's scratch buffers; each chunk gives a ``ChunkFigures`` of its
own, and ``tensor_diff`` adds them up in chunk order, so the totals do not depend on which thread
took which chunk. A chunk known to be bit-equal (``equal_figures``) gives exactly the figures
the full path would give it, without the subtraction.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_NP_CAST = (torch.float32, torch.float64)  # numpy casts these to float64 faster than torch


class ChunkFigures(NamedTuple):
    """Counts, largest |a - b| and the float64 sums of squares of one chunk (finite places);
    ``rounded``: ``max_abs`` is |a - b| rounded to float32 (``single_figures``), not exact."""

    n_diff: int
    nan_a: int
    nan_b: int
    max_abs: float
    a2: float
    b2: float
    d2: float
    rounded: bool = False


class ChunkMath:
    """One thread's scratch buffers and the arithmetic of a chunk pair.

    Parameters
    ----------
    atol, rtol : float
        Tolerances; a place differs when ``|a - b| > atol + rtol * |b|`` (0, 0: bit-exact).
    work : torch.dtype
        ``float64`` or ``complex128``.
    same_dtype : bool
        Both sides have the same dtype (integers are then compared natively, not in float64).
    """

    def __init__(self, atol: float, rtol: float, work: torch.dtype, same_dtype: bool):
        self.atol, self.rtol, self.work, self.same_dtype = atol, rtol, work, same_dtype
        self.floating = work in (torch.float64, torch.complex128)
        self._bufs: list[torch.Tensor] = []
        self._ne = np.empty(0, dtype=bool)

    def _cast(self, p: torch.Tensor, i: int) -> torch.Tensor:
        """``p`` in the work dtype: ``p`` itself when it already is, else a copy into the i-th
        reused buffer (no fresh allocation, so no page faults, per chunk)."""
        if p.dtype == self.work and p.is_contiguous():
            return p
        if p.device.type != "cpu":
            return p.to(self.work)
        return self._buf(i, p.numel()).copy_(p)

    def _buf(self, i: int, n: int) -> torch.Tensor:
        while len(self._bufs) <= i:
            self._bufs.append(torch.empty(0, dtype=self.work))
        if self._bufs[i].numel() < n:
            self._bufs[i] = torch.empty(n, dtype=self.work)
        return self._bufs[i][:n]

    def equal_figures(self, pa: torch.Tensor) -> ChunkFigures:
        """A chunk whose two sides are bit-equal: its norms and NaN counts, the same numbers
        ``figures`` computes for it (same casts, same reductions)."""
        x = self._cast(pa, 0)
        if not x.is_complex():
            s = _dot(x, x)
            if math.isfinite(s):
                return ChunkFigures(0, 0, 0, 0.0, s, s, 0.0)
        nan = int(torch.isnan(x).sum()) if self.floating else 0
        s = float(_sq(torch.where(torch.isfinite(x), x, 0)).sum())
        return ChunkFigures(0, nan, nan, 0.0, s, s, 0.0)

    def figures(self, pa: torch.Tensor, pb: torch.Tensor) -> ChunkFigures:
        if pa.numel() == 0:
            return ChunkFigures(0, 0, 0, 0.0, 0.0, 0.0, 0.0)
        if (pa.dtype in _FLOATS and pb.dtype in _FLOATS and not (self.atol or self.rtol)
                and pa.device.type == "cpu" and pb.device.type == "cpu"):
            return self._floats(pa, pb)
        xa, xb = self._cast(pa, 0), self._cast(pb, 1)
        if not xa.is_complex():
            a2, b2 = _dot(xa, xa), _dot(xb, xb)
            if math.isfinite(a2) and math.isfinite(b2):  # no NaN / Inf on either side
                return self._finite(pa, pb, xa, xb, a2, b2)
        return self._masked(pa, pb, xa, xb)

    def _floats(self, pa: torch.Tensor, pb: torch.Tensor) -> ChunkFigures:
        """Real floats, no tolerance: the fewest passes, over reused float64 buffers.

        numpy casts float32 to float64 faster than torch (torch is faster from 16-bit floats);
        the dot products stay in torch (one thread, see ``one_thread``). a - b is computed in
        float64 over a's copy: a difference of two floats is rounded once there, and is nonzero
        iff they differ (subnormals included), so it also gives the count of differences."""
        n = pa.numel()
        xa, xb = self._buf(0, n), self._buf(1, n)
        ua, ub = xa.numpy(), xb.numpy()
        for p, x, u in ((pa, xa, ua), (pb, xb, ub)):
            if p.dtype in _NP_CAST:
                np.copyto(u, p.numpy())
            else:
                x.copy_(p)
        a2, b2 = _dot(xa, xa), _dot(xb, xb)
        if not (math.isfinite(a2) and math.isfinite(b2)):  # NaN / Inf on a side (or overflow)
            return self._masked(pa, pb, xa, xb)
        np.subtract(ua, ub, out=ua)
        if self._ne.shape[0] < n:
            self._ne = np.empty(n, dtype=bool)
        # finite floats: x - y == 0 exactly when x == y (gradual underflow; -0 == 0)
        n_diff = int(np.count_nonzero(np.not_equal(ua, 0.0, out=self._ne[:n])))
        return ChunkFigures(n_diff, 0, 0, max(-float(ua.min()), float(ua.max())), a2, b2,
                            _dot(xa, xa))

    def _finite(self, pa, pb, xa, xb, a2: float, b2: float) -> ChunkFigures:
        # d goes into a reused buffer (xa's own when xa is a copy and not needed after)
        keep_xa = not (pa.dtype.is_floating_point and pb.dtype.is_floating_point)
        if xa.device.type != "cpu":
            d = xa - xb
        else:
            d = xa if (xa is not pa and not keep_xa) else self._buf(2, xa.numel())
            torch.sub(xa, xb, out=d)
        lo, hi = torch.aminmax(d)
        max_abs = max(-float(lo), float(hi))
        d2 = _dot(d, d)
        if self.atol or self.rtol:
            n_diff = int((d.abs() > self.atol + self.rtol * xb.abs()).sum())
        elif not keep_xa:
            n_diff = int(torch.count_nonzero(d))  # exact: both sides are exact in float64
        else:  # integers beyond 2**53 are not exact in float64
            n_diff = int(((pa != pb) if self.same_dtype else (xa != xb)).sum())
        return ChunkFigures(n_diff, 0, 0, max_abs, a2, b2, d2)

    def _masked(self, pa, pb, xa, xb) -> ChunkFigures:
        # floats are exact in float64 (and float8 has no == of its own); int64 is not
        native = self.same_dtype and not pa.dtype.is_floating_point
        same = (pa == pb) if native else (xa == xb)  # inf == inf; NaN != NaN
        finite = None
        nan_a = nan_b = 0
        if self.floating:
            na, nb = torch.isnan(xa), torch.isnan(xb)
            nan_a, nan_b = int(na.sum()), int(nb.sum())
            same |= na & nb
            finite = torch.isfinite(xa) & torch.isfinite(xb)
            xa, xb = torch.where(finite, xa, 0), torch.where(finite, xb, 0)
        d = (xa - xb).abs()
        if self.atol or self.rtol:
            within = d <= self.atol + self.rtol * xb.abs()
            same |= within if finite is None else within & finite
        return ChunkFigures(int((~same).sum()), nan_a, nan_b, float(d.max()),
                            float(_sq(xa).sum()), float(_sq(xb).sum()), float(_sq(d).sum()))


def _dot(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.dot(x, y))


def _sq(x: torch.Tensor) -> torch.Tensor:
    return x.abs().square() if x.is_complex() else x.square()
