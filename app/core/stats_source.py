"""What statistics read of a tensor: its distinct elements as converted chunks, and samples.

``_Source`` maps every dtype and layout to float chunks: values as ``app.core.model.dtypes``
defines them (quantized dequantized, fp8 as floats, complex by part), an expanded (stride-0)
tensor read once per distinct element and weighted, a sparse one as its stored values plus its
implicit zeros. ``_sample`` takes evenly spaced blocks of it for previews.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch

from .model import dtypes

CHUNK = 1 << 20          # elements per chunk: 4 MB of float32, stays in cache
PREVIEW_BLOCKS = 256
PREVIEW_BLOCK = 4096     # 1M sampled elements in all
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
