"""Compare two tensors of the same shape, chunk by chunk, in bounded memory.

Equal tensors cost one ``torch.equal`` per chunk (memory speed). The first chunk that differs
switches to the full path, which works in float64 (complex128 for complex) and re-reads the
chunks already passed for their norms, so a changed tensor gets exact metrics without a second
full pass. NaN equals NaN at the same place; ``max_abs``, ``rel_l2`` and ``cosine`` are taken over
the places where both sides are finite, ``n_diff`` counts every place that differs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from ..errors import Cancelled
from ..threads import one_thread  # noqa: F401 - diff.py takes it from here

CHUNK = 1 << 16  # elements per chunk: 512 KB per side in float64; one thread, so the passes of a
# chunk stay in cache, and the float64 copies go into buffers reused from chunk to chunk

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_NP_CAST = (torch.float32, torch.float64)  # numpy casts these to float64 faster than torch

_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64, 16: torch.int64}


@dataclass
class TensorDiff:
    """Per-tensor figures of CONTRACT.md section 5 (plus NaN counts of each side)."""

    numel: int
    n_diff: int = 0
    max_abs: float = 0.0
    rel_l2: float | None = 0.0   # None where ||B|| = 0 and A differs (infinite)
    cosine: float | None = 1.0
    nan_a: int = 0
    nan_b: int = 0

    @property
    def equal(self) -> bool:
        return self.n_diff == 0

    def as_json(self, name: str) -> dict:
        return {"name": name, "max_abs": _finite(self.max_abs), "rel_l2": _finite(self.rel_l2),
                "cosine": _finite(self.cosine), "n_diff": self.n_diff, "numel": self.numel,
                "nan_a": self.nan_a, "nan_b": self.nan_b}


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def chunk_keys(shape: tuple[int, ...], n: int = CHUNK) -> Iterator[tuple]:
    """Index keys splitting a tensor of ``shape`` into pieces of at most ``n`` elements (or one
    row when a row is larger), in logical order; they depend on the shape only, so two tensors
    of the same shape split the same way whatever their strides."""
    numel = math.prod(shape)
    if not shape or numel <= n:
        yield ()
        return
    if len(shape) == 1:
        for i in range(0, shape[0], n):
            yield (slice(i, i + n),)
        return
    row = math.prod(shape[1:])
    if row <= n:
        step = max(1, n // row)
        for i in range(0, shape[0], step):
            yield (slice(i, i + step),)
        return
    for i in range(shape[0]):
        for k in chunk_keys(tuple(shape[1:]), n):
            yield (i, *k)


def _piece(t: torch.Tensor, key: tuple) -> torch.Tensor:
    p = t[key] if key else t
    return p.reshape(-1)


def _plain(t: torch.Tensor) -> torch.Tensor:
    t = t.detach()
    if t.is_quantized:
        t = t.dequantize()
    return t.resolve_conj().resolve_neg()


class _Acc:
    def __init__(self, atol: float, rtol: float, work: torch.dtype, same_dtype: bool):
        self.atol, self.rtol, self.work, self.same_dtype = atol, rtol, work, same_dtype
        self.floating = work in (torch.float64, torch.complex128)
        self.n_diff = self.nan_a = self.nan_b = 0
        self.max_abs = 0.0
        self.d2 = self.a2 = self.b2 = 0.0
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

    def norms_only(self, pa: torch.Tensor, pb: torch.Tensor) -> None:
        """A chunk known to be bit-equal: only its norms count."""
        x = self._cast(pa, 0)
        s = _dot(x, x)
        if not math.isfinite(s):
            s = float(_sq(torch.where(torch.isfinite(x), x, 0)).sum())
        self.a2 += s
        self.b2 += s

    def add(self, pa: torch.Tensor, pb: torch.Tensor) -> None:
        if pa.numel() == 0:
            return
        if (pa.dtype in _FLOATS and pb.dtype in _FLOATS and not (self.atol or self.rtol)
                and pa.device.type == "cpu" and pb.device.type == "cpu"):
            self._add_floats(pa, pb)
            return
        xa, xb = self._cast(pa, 0), self._cast(pb, 1)
        if not xa.is_complex():
            a2, b2 = _dot(xa, xa), _dot(xb, xb)
            if math.isfinite(a2) and math.isfinite(b2):  # no NaN / Inf on either side
                self._add_finite(pa, pb, xa, xb, a2, b2)
                return
        self._add_masked(pa, pb, xa, xb)

    def _add_floats(self, pa: torch.Tensor, pb: torch.Tensor) -> None:
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
            self._add_masked(pa, pb, xa, xb)
            return
        self.a2 += a2
        self.b2 += b2
        np.subtract(ua, ub, out=ua)
        if self._ne.shape[0] < n:
            self._ne = np.empty(n, dtype=bool)
        # finite floats: x - y == 0 exactly when x == y (gradual underflow; -0 == 0)
        self.n_diff += int(np.count_nonzero(np.not_equal(ua, 0.0, out=self._ne[:n])))
        self.d2 += _dot(xa, xa)
        self.max_abs = max(self.max_abs, -float(ua.min()), float(ua.max()))

    def _add_finite(self, pa, pb, xa, xb, a2: float, b2: float) -> None:
        # d goes into a reused buffer (xa's own when xa is a copy and not needed after)
        keep_xa = not (pa.dtype.is_floating_point and pb.dtype.is_floating_point)
        if xa.device.type != "cpu":
            d = xa - xb
        else:
            d = xa if (xa is not pa and not keep_xa) else self._buf(2, xa.numel())
            torch.sub(xa, xb, out=d)
        lo, hi = torch.aminmax(d)
        self.max_abs = max(self.max_abs, -float(lo), float(hi))
        d2 = _dot(d, d)
        self.d2 += d2
        self.a2 += a2
        self.b2 += b2
        if self.atol or self.rtol:
            self.n_diff += int((d.abs() > self.atol + self.rtol * xb.abs()).sum())
        elif not keep_xa:
            self.n_diff += int(torch.count_nonzero(d))  # exact: both sides are exact in float64
        else:  # integers beyond 2**53 are not exact in float64
            self.n_diff += int(((pa != pb) if self.same_dtype else (xa != xb)).sum())

    def _add_masked(self, pa, pb, xa, xb) -> None:
        # floats are exact in float64 (and float8 has no == of its own); int64 is not
        native = self.same_dtype and not pa.dtype.is_floating_point
        same = (pa == pb) if native else (xa == xb)  # inf == inf; NaN != NaN
        finite = None
        if self.floating:
            na, nb = torch.isnan(xa), torch.isnan(xb)
            self.nan_a += int(na.sum())
            self.nan_b += int(nb.sum())
            same |= na & nb
            finite = torch.isfinite(xa) & torch.isfinite(xb)
            xa, xb = torch.where(finite, xa, 0), torch.where(finite, xb, 0)
        d = (xa - xb).abs()
        if self.atol or self.rtol:
            within = d <= self.atol + self.rtol * xb.abs()
            same |= within if finite is None else within & finite
        self.n_diff += int((~same).sum())
        if d.numel():
            self.max_abs = max(self.max_abs, float(d.max()))
        self.d2 += float(_sq(d).sum())
        self.a2 += float(_sq(xa).sum())
        self.b2 += float(_sq(xb).sum())

    def result(self, numel: int) -> TensorDiff:
        if self.b2 > 0:
            rel = math.sqrt(self.d2) / math.sqrt(self.b2)
        else:
            rel = 0.0 if self.d2 == 0 else None
        if self.a2 > 0 and self.b2 > 0:
            # cos = 1 - (|a-b|^2 - (|a|-|b|)^2) / (2|a||b|): no cancellation where a ~ b
            na, nb = math.sqrt(self.a2), math.sqrt(self.b2)
            cos = 1.0 - (self.d2 - (na - nb) ** 2) / (2 * na * nb)
            cos = max(-1.0, min(1.0, cos))
        else:
            cos = 1.0 if self.a2 == self.b2 else 0.0
        return TensorDiff(numel, self.n_diff, self.max_abs, rel, cos, self.nan_a, self.nan_b)


def _dot(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.dot(x, y))


def bits_equal(pa: torch.Tensor, pb: torch.Tensor) -> bool:
    """Same bytes (so NaN equals NaN); numpy's integer compare runs at memory speed."""
    if pa.dtype != pb.dtype or pa.shape != pb.shape:
        return False
    size = pa.element_size()
    if size not in _BITS or pa.device.type != "cpu":
        return torch.equal(pa, pb)
    ia = pa.contiguous().view(_BITS[size]).numpy()
    ib = pb.contiguous().view(_BITS[size]).numpy()
    return bool(np.array_equal(ia, ib))


def _sq(x: torch.Tensor) -> torch.Tensor:
    return x.abs().square() if x.is_complex() else x.square()


def work_dtype(a: torch.dtype, b: torch.dtype) -> torch.dtype:
    return torch.complex128 if (a.is_complex or b.is_complex) else torch.float64


def compare_tensors(a: torch.Tensor, b: torch.Tensor, atol: float = 0.0, rtol: float = 0.0,
                    chunk: int = CHUNK, progress: Callable[[int], None] | None = None,
                    cancelled: Callable[[], bool] | None = None) -> TensorDiff:
    """Compare ``a`` with reference ``b`` (same shape; dtypes may differ).

    ``progress(n)`` is called with the number of elements just done; ``cancelled()`` is polled
    between chunks and raises ``Cancelled`` when it returns True.
    """
    a, b = _plain(a), _plain(b)
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    same_dtype = a.dtype == b.dtype
    acc = _Acc(float(atol), float(rtol), work_dtype(a.dtype, b.dtype), same_dtype)
    keys = list(chunk_keys(tuple(a.shape), chunk))
    dirty = False
    for i, key in enumerate(keys):
        if cancelled is not None and cancelled():
            raise Cancelled()
        pa, pb = _piece(a, key), _piece(b, key)
        if not dirty and same_dtype and bits_equal(pa, pb):
            pass
        else:
            if not dirty:
                dirty = True
                for k in keys[:i]:
                    acc.norms_only(_piece(a, k), _piece(b, k))
            acc.add(pa, pb)
        if progress is not None:
            progress(pa.numel())
    if not dirty:
        return TensorDiff(a.numel())
    return acc.result(a.numel())
