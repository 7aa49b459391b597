"""Compare two tensors of the same shape, chunk by chunk, in bounded memory.

Each chunk pair is first checked for equal bytes (memory speed); a chunk that differs gets its
figures in float32 arithmetic where both sides are float32, or bfloat16, or float16, and there
is no tolerance (``single_figures``: norms within a documented bound, counts and the largest
difference exact), else, or where float32 cannot keep that bound, in float64 (complex128 for
complex, see ``chunk_figures``). Once a tensor is known to differ, its bit-equal chunks get
their norms and NaN counts too. Chunks are shared between
two threads (``chunk_threads``); each chunk's figures are kept apart and added up in chunk
order, so the result is the same on every run, with any number of threads. NaN equals NaN at
the same place; ``max_abs``, ``rel_l2`` and ``cosine`` are taken over the places where both
sides are finite, ``n_diff`` counts every place that differs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from .chunk_figures import ChunkFigures, ChunkMath
from .chunk_threads import default_threads, map_chunks
from .single_figures import SINGLE, SingleMath, exact_max
from ..threads import one_thread

CHUNK = 1 << 16  # elements per chunk: 512 KB per side in float64, so the few passes over a
# chunk stay in the core's L2 cache (measured: 1M-element chunks are 2x slower)
PARALLEL_MIN = 1 << 18  # elements below which a second thread costs more than it saves

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


def _key_numel(shape: torch.Size, key: tuple) -> int:
    """Elements of ``t[key]`` (a ``chunk_keys`` key) without making the view."""
    n = 1
    for dim, k in zip(shape, key):
        n *= len(range(*k.indices(dim))) if isinstance(k, slice) else 1
    return n * math.prod(shape[len(key):])


def _piece(t: torch.Tensor, key: tuple) -> torch.Tensor:
    p = t[key] if key else t
    return p.reshape(-1)


def _plain(t: torch.Tensor) -> torch.Tensor:
    t = t.detach()
    if t.is_quantized:
        t = t.dequantize()
    return t.resolve_conj().resolve_neg()


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


def work_dtype(a: torch.dtype, b: torch.dtype) -> torch.dtype:
    return torch.complex128 if (a.is_complex or b.is_complex) else torch.float64


def compare_tensors(a: torch.Tensor, b: torch.Tensor, atol: float = 0.0, rtol: float = 0.0,
                    chunk: int = CHUNK, progress: Callable[[int], None] | None = None,
                    cancelled: Callable[[], bool] | None = None,
                    threads: int | None = None) -> TensorDiff:
    """Compare ``a`` with reference ``b`` (same shape; dtypes may differ).

    ``progress(n)`` is called with the number of elements just done; ``cancelled()`` is polled
    between chunks and raises ``Cancelled`` when it returns True; both only on the calling
    thread. ``threads``: how many threads share the chunks (default: ``default_threads()`` for
    tensors of ``PARALLEL_MIN`` elements or more, else 1); the figures do not depend on it.
    """
    a, b = _plain(a), _plain(b)
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    same_dtype = a.dtype == b.dtype
    keys = list(chunk_keys(tuple(a.shape), chunk))
    sizes = [_key_numel(a.shape, k) for k in keys]
    if threads is None:
        threads = default_threads() if a.numel() >= PARALLEL_MIN else 1
    figs: list[ChunkFigures | None] = [None] * len(keys)  # None: bit-equal, figures pending
    # a changed dtype is compared in float64 (CONTRACT.md section 5)
    single = (same_dtype and a.dtype in SINGLE and not (atol or rtol)
              and a.device.type == "cpu" and b.device.type == "cpu")

    def make_job() -> Callable[[int], ChunkFigures | None]:
        math_ = ChunkMath(float(atol), float(rtol), work_dtype(a.dtype, b.dtype), same_dtype)
        fast = SingleMath() if single else None
        seen_diff = not same_dtype

        def job(i: int) -> ChunkFigures | None:
            nonlocal seen_diff
            pa, pb = _piece(a, keys[i]), _piece(b, keys[i])
            if not seen_diff and bits_equal(pa, pb):
                return None
            seen_diff = True  # this tensor differs: later equal chunks are not worth checking
            f = fast.figures(pa, pb) if fast is not None else None
            return math_.figures(pa, pb) if f is None else f
        return job

    with one_thread():
        map_chunks(range(len(keys)), make_job, sizes, figs, threads=threads, progress=progress,
                   cancelled=cancelled)
        pending = [i for i, f in enumerate(figs) if f is None]
        if len(pending) == len(keys):
            return TensorDiff(a.numel())

        def make_norms() -> Callable[[int], ChunkFigures]:
            math_ = ChunkMath(float(atol), float(rtol), work_dtype(a.dtype, b.dtype), same_dtype)
            fast = SingleMath() if single else None

            def norms(i: int) -> ChunkFigures:
                p = _piece(a, keys[i])
                s = fast.equal_sumsq(p) if fast is not None else None
                return math_.equal_figures(p) if s is None else ChunkFigures(0, 0, 0, 0.0, s, s,
                                                                             0.0)
            return norms

        map_chunks(pending, make_norms, sizes, figs, threads=threads if len(pending) > 1 else 1,
                   cancelled=cancelled)
        _exact_max(figs, lambda i: (_piece(a, keys[i]), _piece(b, keys[i])))
    return _result(a.numel(), figs)


def _exact_max(figs: list[ChunkFigures], pieces: Callable[[int], tuple]) -> None:
    """Make ``max_abs`` exact where it may be the tensor's largest and was rounded to float32.

    A float32 |a - b| is within 2**-24 of the exact one (relatively), so only chunks within
    2**-22 of the top can hold the exact largest: usually one chunk (``exact_max``; the
    result is a max, so it does not depend on which thread took which chunk)."""
    top = max(f.max_abs for f in figs)
    near = top * (1 - 2.0 ** -22)
    for i, f in enumerate(figs):
        if f.rounded and f.max_abs >= near:
            figs[i] = f._replace(max_abs=exact_max(*pieces(i), f.max_abs), rounded=False)


def _result(numel: int, figs: list[ChunkFigures]) -> TensorDiff:
    """The chunks' figures added up in chunk order (float sums: the order fixes the rounding)."""
    n_diff = nan_a = nan_b = 0
    max_abs = a2 = b2 = d2 = 0.0
    for f in figs:
        n_diff += f.n_diff
        nan_a += f.nan_a
        nan_b += f.nan_b
        max_abs = max(max_abs, f.max_abs)
        a2 += f.a2
        b2 += f.b2
        d2 += f.d2
    if b2 > 0:
        rel = math.sqrt(d2) / math.sqrt(b2)
    else:
        rel = 0.0 if d2 == 0 else None
    if a2 > 0 and b2 > 0:
        # cos = 1 - (|a-b|^2 - (|a|-|b|)^2) / (2|a||b|): no cancellation where a ~ b
        na, nb = math.sqrt(a2), math.sqrt(b2)
        cos = 1.0 - (d2 - (na - nb) ** 2) / (2 * na * nb)
        cos = max(-1.0, min(1.0, cos))
    else:
        cos = 1.0 if a2 == b2 else 0.0
    return TensorDiff(numel, n_diff, max_abs, rel, cos, nan_a, nan_b)
