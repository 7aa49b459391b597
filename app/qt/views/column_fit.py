"""Sizing a tree view's columns to their text from the first screen of rows, in one pass.

``QTreeView.resizeColumnToContents`` asks the model for every visible row's data, half a dozen
roles per cell, through the item delegate: on a few hundred rows that stalled opening a file by
250-500 ms. Here only the display text of at most ``rows`` rows (the visible ones first) is
measured with the view's font metrics, plus what the delegate adds around it.
"""
from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QStyle, QTreeView

#: the widest a column is made by fitting (the user can still drag it wider)
MAX_WIDTH = 480
SLACK = 8


def sample_rows(view: QTreeView, rows: int) -> list[QModelIndex]:
    """Up to ``rows`` indexes of column 0: from the first visible one downwards, then upwards."""
    top = view.indexAt(view.viewport().rect().topLeft())
    model = view.model()
    index = top if top.isValid() else model.index(0, 0)
    out: list[QModelIndex] = []
    while index.isValid() and len(out) < rows:
        out.append(index)
        index = view.indexBelow(index)
    index = view.indexAbove(top) if top.isValid() else QModelIndex()
    while index.isValid() and len(out) < rows:
        out.append(index)
        index = view.indexAbove(index)
    return out


def _depth(index: QModelIndex) -> int:
    depth, parent = 0, index.parent()
    while parent.isValid():
        depth, parent = depth + 1, parent.parent()
    return depth


def fit_columns(view: QTreeView, rows: int, caps: dict[int, int] | None = None,
                apply: bool = True) -> list[int]:
    """Resize every shown section of ``view``'s header to its header text and the text of at most
    ``rows`` rows, each at most ``caps[column]`` (else ``MAX_WIDTH``) wide; returns the widths
    (``apply=False``: only returns them)."""
    model, header = view.model(), view.header()
    style = view.style()
    fm, header_fm = view.fontMetrics(), header.fontMetrics()
    # the delegate's text margins, plus slack: advances are fractional and a text exactly as
    # wide as its rect is elided ("float32" showed as "float...")
    pad = 2 * (style.pixelMetric(QStyle.PM_FocusFrameHMargin, None, view) + 1) + SLACK
    icon = view.iconSize().width()
    if icon <= 0:
        icon = style.pixelMetric(QStyle.PM_SmallIconSize, None, view)
    header_pad = 2 * style.pixelMetric(QStyle.PM_HeaderMargin, None, header) + 8
    columns = model.columnCount()
    shown = [c for c in range(columns) if not view.isColumnHidden(c)]
    widths = [header_fm.horizontalAdvance(str(model.headerData(c, Qt.Horizontal) or "")) + header_pad
              for c in range(columns)]
    indent = view.indentation()
    for index in sample_rows(view, rows):
        row, parent = index.row(), index.parent()
        for c in shown:
            cell = index if c == 0 else model.index(row, c, parent)
            text = cell.data(Qt.DisplayRole)
            w = fm.horizontalAdvance(str(text)) + pad if text else 0
            if c == 0:
                w += indent * (_depth(index) + (1 if view.rootIsDecorated() else 0)) + icon + 4
            widths[c] = max(widths[c], w)
    caps = caps or {}
    widths = [min(w, caps.get(c, MAX_WIDTH)) for c, w in enumerate(widths)]
    for c in shown if apply else ():
        header.resizeSection(c, widths[c])
    return widths
