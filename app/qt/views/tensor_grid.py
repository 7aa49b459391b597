"""The tensor view's grid (``tensorGrid``): a QTableView tuned for huge tables, with fixed section
sizes, an index header sized without measuring its sections, and Ctrl+C copying the selection as
tab-separated text (at most ``COPY_LIMIT`` cells)."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QItemSelectionModel, QSize, Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView

from ..models.grid_model import TensorTableModel

COPY_LIMIT = 1 << 20  # cells copied at most; a larger selection is cut to its first rows


class IndexHeader(QHeaderView):
    """A header of indices whose size hint is computed from the largest index, not by measuring
    the first and last hundred sections through the model (1000+ calls into Python after every
    model reset: 12 ms of a 50000-row grid's first paint)."""

    def sizeHint(self) -> QSize:
        fm = self.fontMetrics()
        if self.orientation() == Qt.Vertical:
            model = self.model()
            last = model.headerData(self.count() - 1, Qt.Vertical) if model and self.count() else 0
            digits = max(1, len(str(last)))
            return QSize(fm.horizontalAdvance("8" * digits) + 14, self.defaultSectionSize())
        return QSize(self.defaultSectionSize(), fm.height() + 8)


class TensorGrid(QTableView):
    """QTableView tuned for huge tables; Ctrl+C copies the selection as TSV."""

    copied = Signal(str)  # a message for the status bar
    resized = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("tensorGrid")
        self.setHorizontalHeader(IndexHeader(Qt.Horizontal, self))
        self.setVerticalHeader(IndexHeader(Qt.Vertical, self))
        self.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.setWordWrap(False)
        self.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.DoubleClicked | QAbstractItemView.EditKeyPressed
                             | QAbstractItemView.AnyKeyPressed)
        fm = self.fontMetrics()
        widest = fm.horizontalAdvance("-0.00000000e-00") + 14
        for header, size in ((self.verticalHeader(), fm.height() + 6),
                             (self.horizontalHeader(), widest)):
            header.setSectionResizeMode(QHeaderView.Fixed if header is self.verticalHeader()
                                        else QHeaderView.Interactive)
            header.setSectionsClickable(True)  # a click selects the row / column
            header.setMinimumSectionSize(8)
            header.setDefaultSectionSize(size)
            header.setHighlightSections(False)
        self.verticalHeader().setDefaultAlignment(Qt.AlignRight | Qt.AlignVCenter)

    def setModel(self, model) -> None:
        super().setModel(model)
        # QHeaderView asks its selection model whether each visible section is wholly selected,
        # which walks every cell of the column (50000 flags() calls into Python per section:
        # seconds after Ctrl+A). The headers get their own, empty selection models instead;
        # selecting by clicking a header still goes through the table's.
        for header in (self.horizontalHeader(), self.verticalHeader()):
            header.setSelectionModel(QItemSelectionModel(model, header))

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self.resized.emit()

    def event(self, event):
        if event.type() == QEvent.ShortcutOverride and event.matches(QKeySequence.Copy):
            event.accept()  # a window-wide Ctrl+C must not take the grid's copy
            return True
        return super().event(event)

    def keyPressEvent(self, event):
        if event.matches(QKeySequence.Copy):
            self.copy_selection()
            event.accept()
            return
        super().keyPressEvent(event)

    def selection_text(self, limit: int = COPY_LIMIT) -> tuple[str, bool]:
        """The selected cells as TSV (bounding box of the selection, unselected cells empty),
        read in numpy blocks; True when the selection was cut to ``limit`` cells."""
        model: TensorTableModel = self.model()
        ranges = [r for r in self.selectionModel().selection() if r.isValid()]
        if model is None or model.view2d() is None or not ranges:
            return "", False
        top, left = min(r.top() for r in ranges), min(r.left() for r in ranges)
        bottom, right = max(r.bottom() for r in ranges), max(r.right() for r in ranges)
        ncols = right - left + 1
        max_rows = max(1, limit // ncols)
        cut = bottom - top + 1 > max_rows
        bottom = min(bottom, top + max_rows - 1)
        fmt = model.format_value
        if len(ranges) == 1:
            rows = self._read(model, top, bottom + 1, left, right + 1)
            return "\n".join("\t".join(map(fmt, row)) for row in rows), cut
        cells = [[""] * ncols for _ in range(bottom - top + 1)]
        for r in ranges:
            r0, r1 = r.top(), min(r.bottom(), bottom)
            if r0 > r1:
                continue
            block = self._read(model, r0, r1 + 1, r.left(), r.right() + 1)
            for i, row in enumerate(block):
                cells[r0 - top + i][r.left() - left:r.right() - left + 1] = map(fmt, row)
        return "\n".join("\t".join(row) for row in cells), cut

    @staticmethod
    def _read(model: TensorTableModel, r0: int, r1: int, c0: int, c1: int) -> list[list]:
        """Cells as Python values, None past the end of a wrapped vector (copied as empty)."""
        rows = model.read_block(r0, r1, c0, c1).tolist()
        past = model.view2d().past_end(r0, r1, c0, c1)
        if past is not None:
            for r, c in zip(*past.nonzero()):
                rows[r][c] = None
        return rows

    def copy_selection(self) -> str:
        text, cut = self.selection_text()
        if text:
            QGuiApplication.clipboard().setText(text)
            n = text.count("\n") + 1
            self.copied.emit(f"Copied {n} rows" + (f" (selection cut to {COPY_LIMIT:,} cells)"
                                                   if cut else ""))
        return text


