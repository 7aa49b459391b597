"""A 2-D window onto a tensor of any rank, dtype and layout, read a block at a time as numpy.

Rank 0 is one cell, rank 1 one column (or, with ``wrap=w``, rows of ``w`` elements: row ``r``
starts at element ``r * w``, the last row may be short), rank >= 2 two chosen axes with fixed
indices for the others. A block is cut from the tensor itself (slices only, so quantized per-channel scales and
expanded strides stay as they are) and only then converted through ``dtypes.values``: fp8 and
quantized tensors show the values they stand for, raw-bit dtypes their unsigned integers, and a
sparse tensor is densified one block at a time. Nothing larger than a block is materialised.
"""
from __future__ import annotations

import numpy as np
import torch

from . import dtypes

HYBRID_DENSE_LIMIT = 1 << 24


class Slice2D:
    """The 2-D window: ``rows`` x ``cols`` cells, ``index(row, col)`` the element of a cell (None
    past the end of a wrapped vector), ``block(r0, r1, c0, c1)`` the values as numpy."""

    def __init__(self, t: torch.Tensor, row_axis: int = 0, col_axis: int = 1,
                 fixed: dict[int, int] | None = None, raw: bool = False, wrap: int = 0):
        t = t.detach()
        if dtypes.is_raw(t.dtype):
            t = dtypes.raw_view(t)
        self.raw = bool(raw) and t.is_quantized
        self.sparse = dtypes.is_sparse(t)
        if self.sparse:
            coo = t if t.layout == torch.sparse_coo else t.to_sparse_coo()
            coo = coo.coalesce()
            if coo.dense_dim():  # hybrid: the values hold dense blocks
                if coo.numel() > HYBRID_DENSE_LIMIT:
                    raise ValueError(f"a hybrid sparse tensor of {coo.numel():,} elements is too "
                                     f"large to show")
                t, self.sparse = coo.to_dense(), False
            else:
                self._indices, self._values = coo._indices(), dtypes.values(coo._values())
        self.tensor = t
        nd = t.dim()
        self.fixed: dict[int, int] = {}
        if nd >= 2:
            row_axis, col_axis = row_axis % nd, col_axis % nd
            if row_axis == col_axis:
                raise ValueError("the row and column axes must differ")
            self.fixed = {a: min(max(0, int((fixed or {}).get(a, 0))), max(0, t.shape[a] - 1))
                          for a in range(nd) if a not in (row_axis, col_axis)}
        else:
            row_axis, col_axis = 0, 1
        self.row_axis, self.col_axis = row_axis, col_axis
        self.length = int(t.shape[0]) if nd == 1 else 0
        self.wrap = max(0, int(wrap)) if nd == 1 else 0
        if nd == 0:
            self.rows, self.cols = 1, 1
        elif nd == 1 and self.wrap:
            self.rows = -(-self.length // self.wrap)
            self.cols = min(self.wrap, self.length)
        elif nd == 1:
            self.rows, self.cols = self.length, 1
        elif any(t.shape[a] == 0 for a in self.fixed):
            self.rows, self.cols = 0, 0
        else:
            self.rows, self.cols = int(t.shape[row_axis]), int(t.shape[col_axis])

    @property
    def kind(self) -> str:
        """"bool", "int", "float" or "complex": how cells are formatted and parsed."""
        return "int" if self.raw else {"raw": "int"}.get(dtypes.kind(self.tensor.dtype),
                                                         dtypes.kind(self.tensor.dtype))

    def index(self, row: int, col: int) -> tuple[int, ...] | None:
        nd = self.tensor.dim()
        if nd == 0:
            return ()
        if nd == 1:
            i = row * self.wrap + col if self.wrap else row
            return (i,) if i < self.length else None
        return tuple(row if a == self.row_axis else col if a == self.col_axis else self.fixed[a]
                     for a in range(nd))

    def cell_of(self, index) -> tuple[int, int]:
        """The (row, col) of the cell showing element ``index`` (the full index into the tensor;
        the other axes must match the fixed ones)."""
        nd = self.tensor.dim()
        if nd == 0:
            return 0, 0
        if nd == 1:
            return divmod(int(index[0]), self.wrap) if self.wrap else (int(index[0]), 0)
        return int(index[self.row_axis]), int(index[self.col_axis])

    def past_end(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray | None:
        """A boolean mask of the cells in [r0:r1, c0:c1] that show no element (the short last
        row of a wrapped vector), or None when every cell shows one."""
        if not self.wrap:
            return None
        r0, r1, c0, c1 = max(0, r0), min(self.rows, r1), max(0, c0), min(self.cols, c1)
        flat = np.arange(r0, max(r0, r1))[:, None] * self.wrap + np.arange(c0, max(c0, c1))[None, :]
        mask = flat >= self.length
        return mask if mask.any() else None

    def block(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Cells [r0:r1, c0:c1] as a numpy array of the values' dtype."""
        r0, r1 = max(0, r0), min(self.rows, r1)
        c0, c1 = max(0, c0), min(self.cols, c1)
        nr, nc = max(0, r1 - r0), max(0, c1 - c0)
        t = self.tensor
        if self.wrap:
            return self._wrapped_block(r0, r1, c0, c1, nr, nc)
        if self.sparse:
            return self._sparse_block(r0, r1, c0, c1, nr, nc)
        if t.dim() == 0:
            return self._convert(t).reshape(1, 1)[:nr, :nc].numpy()
        if t.dim() == 1:
            return self._convert(t[r0:r1]).reshape(nr, 1)[:, :nc].numpy()
        idx = tuple(slice(r0, r1) if a == self.row_axis else slice(c0, c1) if a == self.col_axis
                    else slice(self.fixed[a], self.fixed[a] + 1) for a in range(t.dim()))
        sub = self._convert(t[idx])
        order = [self.row_axis, self.col_axis] + sorted(self.fixed)
        return sub.permute(order).reshape(nr, nc).numpy()

    def _wrapped_block(self, r0, r1, c0, c1, nr, nc) -> np.ndarray:
        """Rows r0..r1 of ``wrap`` elements (zeros past the end: ``past_end`` masks them)."""
        w, lo = self.wrap, r0 * self.wrap
        hi = max(lo, min(self.length, r1 * w))
        if self.sparse:
            flat = self._sparse_block(lo, hi, 0, 1, hi - lo, 1).reshape(-1)
        else:
            flat = self._convert(self.tensor[lo:hi]).numpy().reshape(-1)
        full = np.zeros(nr * w, dtype=flat.dtype)
        full[:flat.size] = flat
        return full.reshape(nr, w)[:, c0:c1][:, :nc]

    def _convert(self, sub: torch.Tensor) -> torch.Tensor:
        if self.raw:
            return sub.int_repr().cpu()
        return dtypes.values(sub)

    def _sparse_block(self, r0, r1, c0, c1, nr, nc) -> np.ndarray:
        """Only the stored elements inside the block are scattered into it: O(nnz) per block."""
        t, ind, vals = self.tensor, self._indices, self._values
        out = torch.zeros((nr, nc), dtype=vals.dtype)
        if not (nr and nc) or ind.shape[1] == 0:
            return out.numpy()
        nd = t.dim()
        keep = torch.ones(ind.shape[1], dtype=torch.bool)
        if nd == 1:
            ra, ca = 0, None
        else:
            ra, ca = self.row_axis, self.col_axis
        ranges = {ra: (r0, r1)}
        if ca is not None:
            ranges[ca] = (c0, c1)
        for a in range(nd):
            if a in ranges:
                lo, hi = ranges[a]
                keep &= (ind[a] >= lo) & (ind[a] < hi)
            elif a in self.fixed:
                keep &= ind[a] == self.fixed[a]
        sel = keep.nonzero().squeeze(1)
        cols = ind[ca, sel] - c0 if ca is not None else torch.zeros_like(sel)
        out[ind[ra, sel] - r0, cols] = vals[sel]
        return out.numpy()


def default_axes(shape) -> tuple[int, int]:
    """The two axes a grid shows first: the last two, unless one of them has size 1 (a
    ``[2048, 512, 1, 1]`` convolution would show one column); then the two largest, in order."""
    nd = len(shape)
    if nd < 2:
        return 0, 1
    last = (nd - 2, nd - 1)
    if shape[last[0]] > 1 and shape[last[1]] > 1:
        return last
    largest = sorted(range(nd), key=lambda a: -shape[a])[:2]  # stable: earlier axes win ties
    return min(largest), max(largest)
