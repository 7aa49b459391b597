"""Fitting the tree's columns on opening reads a screenful of rows, never every row (issue 9:
fitting through the view over all rows stalled opening by 250-500 ms)."""
from __future__ import annotations

import torch

from app.core.model.document import Document
from app.qt.views.tree_panel import FIT_ROWS, ModuleTreePanel
from app.qt.models.tree_model import NAME, TYPE, TreeModel


class CountingModel(TreeModel):
    """Records which rows (nodes) the view asks data of."""

    def __init__(self, parent=None):
        super().__init__(parent=parent)
        self.asked: set[int] = set()
        self.calls = 0

    def data(self, index, role=0):
        if index.isValid():
            self.calls += 1
            self.asked.add(id(index.internalPointer()))
        return super().data(index, role)


def counting_panel(qtbot) -> ModuleTreePanel:
    panel = ModuleTreePanel()
    qtbot.addWidget(panel)
    panel.model = CountingModel(parent=panel)
    panel.proxy.setSourceModel(panel.model)
    panel.resize(1400, 700)  # wide: fitting, not squeezing (tests/qt/test_tree_panel.py)
    panel.show()
    return panel


def big_document(rows: int = 3000) -> Document:
    sd = {f"blocks.{i}.w": torch.zeros(2, 3) for i in range(rows)}
    sd["a_very_long_module_name_that_decides_the_width.weight"] = torch.zeros(1)
    return Document.from_object(sd, path=None)


def test_fitting_reads_a_screenful_of_rows(qtbot):
    panel = counting_panel(qtbot)
    doc = big_document()
    panel.show_root(doc.root, fit=False)
    panel.view.expandAll()
    model = panel.model
    model.asked.clear()
    model.calls = 0
    panel.fit_columns()
    assert 0 < len(model.asked) <= FIT_ROWS
    assert model.calls <= FIT_ROWS * model.columnCount()  # display text only, once per cell
    header = panel.view.header()
    # sized to what it read: the header texts at least, the name column within its bounds
    assert all(header.sectionSize(c) >= 20 for c in range(model.columnCount()))
    assert 160 <= header.sectionSize(NAME) <= 320


def test_fitting_follows_the_text_of_the_first_screen(qtbot):
    panel = counting_panel(qtbot)
    wide = {"x" * 60 + f".{i}": torch.zeros(123456, dtype=torch.float64) for i in range(3)}
    panel.show_root(Document.from_object(wide, path=None).root)
    header = panel.view.header()
    narrow = {f"n.{i}": torch.zeros(1) for i in range(3)}
    wide_widths = [header.sectionSize(c) for c in range(panel.model.columnCount())]
    panel.show_root(Document.from_object(narrow, path=None).root)
    narrow_widths = [header.sectionSize(c) for c in range(panel.model.columnCount())]
    assert wide_widths[NAME] > narrow_widths[NAME]
    assert wide_widths[5] > narrow_widths[5]  # "964.5 KiB" is wider than "4 B"


class CountingIndexModel(CountingModel):
    def __init__(self, parent=None):
        super().__init__(parent=parent)
        self.indexes = 0

    def index(self, row, column, parent=None):
        self.indexes += 1
        return super().index(row, column, parent) if parent is not None \
            else super().index(row, column)


def test_rebuild_after_a_structural_edit_does_not_walk_every_row(qtbot):
    """A rebuild expands the first levels from the nodes, without laying out or asking the
    model for every row (``expandToDepth`` did both, twice)."""
    panel = counting_panel(qtbot)
    panel.model = CountingIndexModel(parent=panel)
    panel.proxy.setSourceModel(panel.model)
    sd = {f"m{i}.layer.{j}.w": torch.zeros(1) for i in range(10) for j in range(300)}
    doc = Document.from_object(sd, path=None)
    panel.model.indexes = 0
    panel.show_root(doc.root, fit=False)
    assert panel.model.indexes < 100 and panel.model.calls == 0
    view = panel.view
    top = [view.model().index(r, 0) for r in range(view.model().rowCount())]
    assert len(top) == 10 and all(view.isExpanded(i) for i in top)  # ten modules: top level
    small = Document.from_object({"a.b.w": torch.zeros(1), "a.c.w": torch.zeros(1)}, path=None)
    panel.show_root(small.root, fit=False)
    a = view.model().index(0, 0)
    assert view.isExpanded(a)
    assert all(view.isExpanded(view.model().index(r, 0, a)) for r in range(2))  # few: one more


def test_fitted_columns_show_their_text_whole(qtbot, window):
    """Widths have room for the text at its fractional advance plus the delegate's margins:
    a column exactly as wide as the rounded advance showed "float32" as "float..."."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QFontMetricsF
    from PySide6.QtWidgets import QStyle
    from app.qt.launch import demo_document
    from app.qt.views.column_fit import sample_rows
    window.open_document(demo_document(), "demo")
    window.show()
    qtbot.waitExposed(window)
    view = window.tree_view
    fm = QFontMetricsF(view.font())
    margins = 2 * (view.style().pixelMetric(QStyle.PM_FocusFrameHMargin, None, view) + 1)
    model = view.model()
    checked = 0
    for index in sample_rows(view, FIT_ROWS):
        for c in range(1, 6):
            cell = model.index(index.row(), c, index.parent())
            text = cell.data(Qt.DisplayRole)
            if c == TYPE and view.header().sectionSize(c) == 0:
                continue  # a narrow dock gives Type away whole, never as a sliver
            if text:
                assert fm.horizontalAdvance(str(text)) + margins < view.header().sectionSize(c), \
                    (text, view.header().sectionSize(c))
                checked += 1
    assert checked > 20
