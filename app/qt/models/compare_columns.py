"""The tree's "Change" column while a reference is compared: text, colour, sort key, filter.

``ChangeColumn(result)`` answers per ``Node``: a tensor row shows how it differs from its match
in the reference; a module row sums its tensors up (how many changed, the largest relative
change). ``TreeModel.extra_column`` and ``TreeFilterProxy.extra_filter`` are the small hooks
that put it in the tree.
"""
from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from ...core.compare.diff import DiffResult
from ...core.model.tree import Node

EQUAL, CHANGED, SHAPE, DTYPE, ONLY_A = "equal", "changed", "shape", "dtype", "only_a"


def _role(r) -> int:
    return int(getattr(r, "value", r))


# roles as ints: comparing an int with a PySide6 enum costs ~25 us per call of ``data``
DISPLAY, TOOLTIP, BACKGROUND = _role(Qt.DisplayRole), _role(Qt.ToolTipRole), _role(Qt.BackgroundRole)
SORT_ROLE = _role(Qt.UserRole) + 3   #: the size of the change, a number (the proxy sorts on it)
ONLY_COLOR = QColor(205, 225, 250)      # only in the document
SHAPE_COLOR = QColor(250, 215, 150)     # shape changed: cannot be compared
#: a changed row's colour: light to strong red with log10(rel_l2) from -8 to 0
WEAK, STRONG = (255, 238, 232), (244, 150, 130)


def change_color(rel: float | None) -> QColor:
    if rel is None or not math.isfinite(rel):
        f = 1.0
    else:
        f = min(1.0, max(0.0, (math.log10(max(rel, 1e-12)) + 8) / 8))
    return QColor(*(int(w + (s - w) * f) for w, s in zip(WEAK, STRONG)))


class ChangeColumn:
    header = "Change"

    def __init__(self, result: DiffResult):
        self.result = result
        self.status: dict[str, str] = {}      # name in the document -> status
        self.rel: dict[str, float] = {}       # name -> rel_l2 (inf when ||B|| = 0)
        for key, (na, _nb) in result.pairs.items():
            d = result.diffs.get(key)
            if d is None:
                self.status[na] = SHAPE
            else:
                self.status[na] = CHANGED if not d.equal else EQUAL
                self.rel[na] = math.inf if d.rel_l2 is None else d.rel_l2
        for s in result.shape_changed:
            self.status[result.pairs[s["name"]][0]] = SHAPE
        for s in result.dtype_changed:
            na = result.pairs[s["name"]][0]
            if self.status.get(na) == EQUAL:
                self.status[na] = DTYPE
        for na in result.only_a:
            self.status[na] = ONLY_A
        self.key = result.key_of_a()
        self._module: dict[int, tuple[int, int, float]] = {}

    # -- per node -------------------------------------------------------------------------------
    def summary(self, node: Node) -> tuple[int, int, float]:
        """(tensors that differ, tensors compared or not, largest rel_l2) under ``node``."""
        if node.entry is not None:
            st = self.status.get(node.entry.name)
            differs = st not in (EQUAL, None)
            rel = self.rel.get(node.entry.name, 0.0) if st == CHANGED else (
                math.inf if st in (SHAPE, ONLY_A) else 0.0)
            return int(differs), 1, rel
        cached = self._module.get(id(node))
        if cached is None:
            n_diff = n = 0
            top = 0.0
            for c in node.children:
                d, k, r = self.summary(c)
                n_diff, n, top = n_diff + d, n + k, max(top, r)
            cached = self._module[id(node)] = (n_diff, n, top)
        return cached

    def is_different(self, node: Node) -> bool:
        return self.summary(node)[0] > 0

    def sort_key(self, node: Node) -> float:
        """The size of the change: largest relative L2 below; only-here and shape changes first."""
        n_diff, _n, top = self.summary(node)
        if not n_diff:
            return -1.0
        return 1e300 if math.isinf(top) else top

    def text(self, node: Node) -> str:
        e = node.entry
        if e is None:
            n_diff, n, top = self.summary(node)
            if not n:
                return ""
            if not n_diff:
                return "equal"
            tail = f", max {_rel(top)}" if top and not math.isinf(top) else ""
            return f"{n_diff}/{n} differ{tail}"
        st = self.status.get(e.name)
        if st is None:
            return ""
        if st == CHANGED:
            d = self.result.diffs[self.key[e.name]]
            return f"{_rel(self.rel[e.name])} ({d.n_diff:,} differ)"
        return {EQUAL: "equal", SHAPE: "shape differs", DTYPE: "dtype differs",
                ONLY_A: "only here"}[st]

    def background(self, node: Node) -> QColor | None:
        n_diff, _n, top = self.summary(node)
        if not n_diff:
            return None
        st = self.status.get(node.entry.name) if node.entry is not None else None
        if st == ONLY_A:
            return ONLY_COLOR
        if st in (SHAPE, DTYPE):
            return SHAPE_COLOR
        return change_color(top)

    def tooltip(self, node: Node) -> str | None:
        e = node.entry
        if e is None or e.name not in self.status:
            return None
        st = self.status[e.name]
        if st == ONLY_A:
            return f"{e.name} is not in the reference"
        key = self.key[e.name]
        nb = self.result.pairs[key][1]
        lines = [f"reference: {nb}"]
        for s in self.result.shape_changed + self.result.dtype_changed:
            if s["name"] == key:
                lines.append(f"{s['a']} here, {s['b']} in the reference")
        d = self.result.diffs.get(key)
        if d is not None and not d.equal:
            lines.append(f"max |A-B| {d.max_abs:.4g}, relative L2 {_rel(d.rel_l2)}, "
                         f"cosine {d.cosine:.6f}, {d.n_diff:,} of {d.numel:,} differ")
            if d.nan_a != d.nan_b:
                lines.append(f"NaN: {d.nan_a} here, {d.nan_b} in the reference")
        return "\n".join(lines)

    @staticmethod
    def colours(role) -> bool:
        """Whether ``role`` is one this column answers for every column (the row's colour)."""
        return _role(role) == BACKGROUND

    def data(self, node: Node, role):
        role = _role(role)
        if role == DISPLAY:
            return self.text(node)
        if role == SORT_ROLE:
            return self.sort_key(node)
        if role == TOOLTIP:
            return self.tooltip(node)
        if role == BACKGROUND:
            return self.background(node)
        return None


def _rel(x: float | None) -> str:
    if x is None or math.isinf(x):
        return "inf"
    return f"{x:.2e}"
