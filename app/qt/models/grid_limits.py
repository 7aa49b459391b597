"""Keeping the grid within what Qt can count and lay out: at most ``MAX_ROWS`` rows and
``MAX_COLS`` columns (Qt's counts and the headers' lengths in pixels are 32-bit: a vector of
3 billion elements as one column overflows them and crashes).

A vector that would need more rows is wrapped (``least_wrap``: the smallest round width that fits,
whatever wrapping was asked); an axis longer than its limit is shown through a window of that many
indices (``Window``) whose start the view lets the user pick. ``GridLimits`` is that part of
``grid_model.TensorTableModel`` (mixed into it): the model hands Slice2D the windowed tensor
(``narrow``: no copy) and adds the window's start to every index it reports.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from PySide6.QtCore import Qt

#: rows of up to 127 pixels and columns of up to 2047 stay inside a 32-bit header length
MAX_ROWS = 1 << 24
MAX_COLS = 1 << 20
#: widths a forced wrap picks from: round numbers, so that row starts stay easy to read
ROUND_WIDTHS = tuple(sorted({m * 10 ** k for m in (1, 2, 5) for k in range(7)}
                            | {1 << k for k in range(3, 21)}))


def least_wrap(length: int, wrap: int) -> int:
    """Elements per row for a vector of ``length``: ``wrap`` (0: one column) unless that needs
    more than ``MAX_ROWS`` rows; then the smallest round width that does not (``MAX_COLS`` at
    most: a longer vector is windowed as well)."""
    if -(-length // max(1, wrap)) <= MAX_ROWS:
        return wrap
    need = -(-length // MAX_ROWS)
    return min(next((w for w in ROUND_WIDTHS if w >= need), MAX_COLS), MAX_COLS)


class Window(NamedTuple):
    """Indices ``start`` to ``start + span - 1`` of an axis of ``length`` are shown."""
    axis: int
    start: int
    span: int
    length: int


class GridLimits:
    """Forced wrapping and windows of ``TensorTableModel``; needs ``_tensor``, ``_wrap``,
    ``_view``, ``_row_axis``, ``_col_axis``, ``_fixed`` and ``_apply_slice``."""

    _starts: dict[int, int]
    _windows: dict[int, Window]

    def _limited(self, t: torch.Tensor, row_axis: int, col_axis: int) -> tuple[torch.Tensor, int]:
        """The part of ``t`` to show and the wrap to show it with; sets ``_windows``."""
        self._windows = {}
        nd = t.dim()
        wrap = 0
        if nd == 1:
            wrap = least_wrap(int(t.shape[0]), self._wrap)
            limits = {0: MAX_ROWS * max(1, wrap)}
        elif nd >= 2 and row_axis % nd != col_axis % nd:
            limits = {row_axis % nd: MAX_ROWS, col_axis % nd: MAX_COLS}
        else:
            limits = {}
        for axis, limit in limits.items():
            n = int(t.shape[axis])
            if n > limit:
                start = min(max(0, self._starts.get(axis, 0)), n - limit)
                self._windows[axis] = Window(axis, start, limit, n)
                t = _narrow(t, axis, start, limit)
        return t, wrap

    def windows(self) -> list[Window]:
        """The axes shown through a window (longer than the grid can count), rows first."""
        order = [0] if self._tensor is not None and self._tensor.dim() == 1 else \
            [self._row_axis, self._col_axis]
        return [self._windows[a] for a in order if a in self._windows]

    def _start(self, axis: int) -> int:
        w = self._windows.get(axis)
        return w.start if w is not None else 0

    def set_window_start(self, axis: int, start: int) -> None:
        """Show the indices of ``axis`` from ``start`` (kept inside the axis)."""
        w = self._windows.get(axis)
        if w is None:
            return
        start = min(max(0, int(start)), w.length - w.span)
        if start == w.start:
            return
        self._starts[axis] = start
        self._apply_slice(self._row_axis, self._col_axis, self._fixed)
        self._changed_all()
        for orientation, count in ((Qt.Vertical, self._rows), (Qt.Horizontal, self._cols)):
            if count:
                self.headerDataChanged.emit(orientation, 0, count - 1)
        self.windowChanged.emit()

    def show_index(self, index) -> None:
        """Move the windows so that element ``index`` (a full index) is shown."""
        for w in list(self._windows.values()):
            i = int(index[w.axis])
            if not w.start <= i < w.start + w.span:
                self.set_window_start(w.axis, i - w.span // 2)

    def _to_tensor(self, idx: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if idx is None or not self._windows:
            return idx
        return tuple(i + self._start(a) for a, i in enumerate(idx))

    def _to_view(self, index) -> tuple[int, ...]:
        return tuple(int(i) - self._start(a) for a, i in enumerate(index))

    def limit_note(self) -> str:
        """What the grid shows differently from what was asked, in one line ("" when nothing)."""
        t, parts = self._tensor, []
        if t is None or self._view is None:
            return ""
        if t.dim() == 1 and self._view.wrap and self._view.wrap != self._wrap:
            parts.append(f"{int(t.shape[0]):,} values: shown {self._view.wrap:,} per row "
                         f"(the grid holds at most {MAX_ROWS:,} rows)")
        for w in self.windows():
            what = "values" if t.dim() == 1 else f"axis {w.axis}: indices"
            parts.append(f"{what} {w.start:,} to {w.start + w.span - 1:,} of {w.length:,} shown "
                         f"(at most {w.span:,} at once)")
        return "; ".join(parts)


def _narrow(t: torch.Tensor, axis: int, start: int, span: int) -> torch.Tensor:
    """A view of indices [start, start + span) of ``axis`` (a sparse tensor: only its entries
    there are copied)."""
    if t.layout == torch.strided:
        return t.narrow(axis, start, span)
    coo = t if t.layout == torch.sparse_coo else t.to_sparse_coo()
    return coo.narrow_copy(axis, start, span)
