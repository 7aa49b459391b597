"""The module tree dock's content: the filter box (``treeFilter``) above the tree (``moduleTree``).

The filter runs over a flat index of names (``core.tree_filter.NameIndex``), built in a
background task once per tree, never through the view: each keystroke runs a pass at the next
turn of the event loop (a regex waits for a pause, ``DEBOUNCE_MS``); each pass answers with the
matching rows, and only the first ``EXPAND_CAP`` matches are expanded (``expandAll`` on 100k
rows took tens of seconds). "NaN/Inf" scans every tensor in a worker, with
progress and Cancel, and filters the tree to the tensors holding NaN or Inf.

The view shows the tree model itself (a filter pass resets it to the matches and their
ancestors; a wide parent hands out its rows a chunk at a time, more as the view scrolls to
them), and the proxy only while compare sorts or filters (``_attach``).
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QModelIndex, Qt, QTimer, Signal
from PySide6.QtWidgets import (QHBoxLayout, QHeaderView, QLabel, QLineEdit, QProgressBar,
                               QStyle, QStyledItemDelegate, QToolButton, QTreeView, QVBoxLayout,
                               QWidget)

from ...core.tree_filter import SYNTAX_HELP, NameIndex
from ..models.tree_model import (BYTES, DTYPE, ELEMENTS, NAME, SHAPE, TYPE, NodeRole,
                                 TreeFilterProxy, TreeModel)
from ..workers import Task
from .column_fit import MAX_WIDTH, SLACK, fit_columns
from .next_turn import NextTurn
from .tree_filtering import DEBOUNCE_MS, EXPAND_CAP, TreeFiltering  # noqa: F401  (re-exported)

#: rows whose text sizes the tree's columns (the visible ones first): a screenful, never all
FIT_ROWS = 48
#: the first selection of a tree just shown never expands a parent with more rows than this
WIDE_PARENT = 500
#: fitted widths: the name column between these; Type (long module class names) capped, so
#: that Shape, Dtype and Elements keep their room
NAME_WIDTH, TYPE_WIDTH = (160, 320), 150
#: the narrowest the name and type columns are squeezed to when the dock is narrow
SQUEEZED = {NAME: 165, TYPE: 0}  # Type can go: the row's icon tells it too
MOVED_IN_SQUEEZED = 120  # a column moved in next to Name (a comparison's Change) elides down to this


class ElideRight(QStyledItemDelegate):
    """For a column moved in next to Name (a comparison's Change): its text is read from the left."""
    def initStyleOption(self, option, index):  # noqa: N802 (Qt's name)
        super().initStyleOption(option, index)
        option.textElideMode = Qt.ElideRight


class ModuleTreePanel(TreeFiltering, QWidget):
    """The filter box (``treeFilter``) above the module tree (``moduleTree``).

    Signals
    -------
    filterApplied(int)
        After each filter pass, with the number of matching rows (-1 for no filter).
    """

    filterApplied = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = TreeModel(parent=self)
        self.proxy = TreeFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.filter = QLineEdit(self, objectName="treeFilter", clearButtonEnabled=True)
        self.filter.setPlaceholderText("Filter: name, glob, re:…, dtype:, shape:, kind:")
        self.filter.setToolTip(SYNTAX_HELP)
        self.nonfinite_button = QToolButton(self, objectName="nonfiniteButton", text="NaN/Inf")
        self.nonfinite_button.setCheckable(True)
        self.nonfinite_button.setToolTip("Scan every tensor for NaN or Inf values and filter "
                                         "the tree to those that have any (click again: all)")
        self.cancel_button = QToolButton(self, objectName="nonfiniteCancel", text="Cancel")
        self.scan_progress = QProgressBar(self, objectName="nonfiniteProgress", textVisible=False)
        self.scan_progress.setMaximumHeight(8)
        self.filter_message = QLabel("", self, objectName="treeFilterMessage")
        self.filter_message.setWordWrap(False)
        self.view = QTreeView(self, objectName="moduleTree")
        self.view.setModel(self.model)  # the proxy only while it is active (_attach)
        self.view.setUniformRowHeights(True)
        self.view.setIndentation(14)  # deep module paths need the width more than the steps
        self.view.setAlternatingRowColors(True)
        self.view.setSelectionBehavior(QTreeView.SelectRows)
        # weight_ih_l0 / weight_ih_l1 stay distinguishable when narrow; tooltips say it all
        self.view.setTextElideMode(Qt.ElideMiddle)
        self._elide_right, self._elided = ElideRight(self.view), set()
        header = self.view.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.Interactive)
        # A double click on a divider fits to a screenful of rows, not to every row.
        header.setResizeContentsPrecision(FIT_ROWS)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.filter, 1)
        top.addWidget(self.nonfinite_button)
        top.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.scan_progress)
        layout.addWidget(self.filter_message)
        layout.addWidget(self.view)
        self.scan_progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self.filter_message.setVisible(False)

        self._opened = False
        self._fitted: dict[int, int] = {}  # fitted widths of Name and Type (before squeezing)
        self._fit_later, self._after_fit = NextTurn(self._fit_turn, self), None  # show_root(then=)
        self._index: NameIndex | None = None
        self._index_task: Task | None = None
        self._index_root = None
        self._scan_task: Task | None = None
        self._running: set[Task] = set()
        self._auto_expanded: set[int] = set()  # rows expanded for the filter, or collapsed since
        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._debounce.timeout.connect(self.apply_filter)
        self.filter.textChanged.connect(self._filter_changed)
        self.nonfinite_button.clicked.connect(self._nonfinite_clicked)
        self.cancel_button.clicked.connect(self.cancel_scan)
        # An empty window says what to do instead of showing empty columns.
        self.empty_hint = QLabel("Drop a checkpoint here,\nor File > Open (Ctrl+O)",
                                 self.view.viewport(), objectName="emptyHint")
        self.empty_hint.setAlignment(Qt.AlignCenter)
        self.empty_hint.setEnabled(False)  # drawn in the palette's disabled (grey) text colour
        self.empty_hint.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.view.viewport().installEventFilter(self)
        self.filter.installEventFilter(self)
        for signal in (self.proxy.modelReset, self.proxy.rowsInserted, self.proxy.rowsRemoved):
            signal.connect(self._update_hint)
        self.proxy.activeChanged.connect(self._attach)
        self.view.verticalScrollBar().valueChanged.connect(self._scrolled)
        self.view.collapsed.connect(self._user_collapsed)
        self.proxy.sourceModelChanged.connect(self._attach)
        self._update_hint()

    def _attach(self, *_args) -> None:
        """Show the tree model itself, or the proxy while it is active (compare's filter or
        sort), keeping the selection model (others listen to it), the columns and the
        current row."""
        want = self.proxy if self.proxy.active else self.proxy.sourceModel()
        if want is None or self.view.model() is want:
            return
        current = self.current_node()
        header, selection = self.view.header(), self.view.selectionModel()
        state = header.saveState()
        selection.blockSignals(True)
        try:
            self.view.setModel(want)
            made = self.view.selectionModel()
            selection.setModel(want)
            self.view.setSelectionModel(selection)
            made.deleteLater()
            header.restoreState(state)
            self._expand_first_levels(self.model.root)
            if current is not None:
                index = self.view_index(current)
                if index.isValid():
                    self.view.setCurrentIndex(index)
        finally:
            selection.blockSignals(False)

    def _scrolled(self, *_args) -> None:
        """While filtering, the rows scrolled into view that hold matches expanded; then the
        next chunk of every expanded parent whose rows handed out so far end on screen
        (the model hands wide parents out a chunk at a time): the row after its subtree is
        visible, or its subtree ends the tree and the view is scrolled to the end."""
        self._expand_in_view()
        model, view = self.model, self.view
        if view.model() is not model or not model.shown.partial:
            return
        bar = view.verticalScrollBar()
        at_end, screen = bar.value() >= bar.maximum(), view.viewport().rect()
        for node in list(model.shown.partial.values()):
            if node is not model.root:
                index = model.index_of(node)
                if not (index.isValid() and view.isExpanded(index)):
                    continue
            after = self._row_after(node)
            if at_end if after is None else view.visualRect(model.index_of(after)).intersects(screen):
                model.fetch_more(node)

    def _row_after(self, node):
        """The node of the first row below ``node``'s subtree; None when it ends the tree."""
        shown, root = self.model.shown, self.model.root
        while node is not None and node is not root:
            up, row = node.parent, shown.row(node)
            if row + 1 < shown.count(up):
                return shown.kids(up)[row + 1]
            node = up
        return None

    def view_index(self, node):
        """``node``'s index in the view's model, its row fetched (invalid when filtered out)."""
        if not self.model.reveal(node):
            return QModelIndex()
        source = self.model.index_of(node)
        return self.proxy.mapFromSource(source) if self.view.model() is self.proxy else source

    def _update_hint(self, *_args) -> None:
        """Shown while nothing is open (a filter that matches nothing is not "nothing open")."""
        self.empty_hint.setVisible(not self.model.root.children)

    def eventFilter(self, obj, event):  # noqa: N802 (Qt's name)
        if event.type() == QEvent.FocusIn and obj is self.filter:
            self._build_index()  # about to type: have the index ready
        elif event.type() == QEvent.Resize and obj is self.view.viewport():
            self.empty_hint.setGeometry(obj.rect())
            self._squeeze()
        return False

    # -- showing a tree ------------------------------------------------------------------------
    def show_root(self, root, fit: bool = True, then=None) -> None:
        """Show a tree; ``fit`` sizes the columns to it (on opening: a structural edit keeps the
        widths, since fitting six columns is most of a rebuild's time). ``then``: fitted on a later
        turn, after the tree's first paint (two short stalls, not one long one), then ``then()``."""
        self.cancel_scan()
        self._index = None
        self.proxy.clear_matches()
        self.model.set_root(root)
        self._index_task = None
        if self.filter.text().strip():
            self._build_index()
            self._debounce.start()
        self._expand_first_levels(root)
        self._opened = fit  # a tree just opened (not rebuilt after an edit): see select()
        if fit and then is not None:
            self._after_fit = then
            self._fit_later.start()
        elif fit:
            self._fit_later.stop()
            self._after_fit = None
            self.fit_columns()

    def _fit_turn(self) -> None:
        then, self._after_fit = self._after_fit, None
        self.fit_columns()
        if then is not None:
            then()

    def _expand_first_levels(self, root, few: int = 40) -> None:
        """The top level expanded, and the next one too when that shows fewer than ``few`` rows.

        Decided from the nodes, and only module rows are expanded, while the view's layout is
        still pending after the reset: ``expandToDepth`` would lay the whole tree out twice and
        ask the model for every row (most of a structural edit's time on the GUI thread)."""
        proxy = self.proxy
        if proxy.extra_filter is not None:  # rows the filter decides
            self.view.expandToDepth(0)
            if self._visible_rows() < few:
                self.view.expandToDepth(1)
            return
        top = root.children
        shown = len(top) + sum(len(n.children) for n in top)
        levels = [n for n in top if n.children]
        if shown < few:
            levels += [c for n in top for c in n.children if c.children]
        for node in levels:
            self.view.setExpanded(self.view_index(node), True)

    def fit_columns(self) -> None:
        """Columns as wide as their text in the first screen of rows (``column_fit``), Type
        capped; when the view is narrower than that, Type and then Name give way (their text
        elides in the middle; tooltips show it whole), so the numbers stay visible."""
        caps, header = {TYPE: TYPE_WIDTH, NAME: NAME_WIDTH[1]}, self.view.header()
        # the widths worked out first, then set at once: set one by one, a refit to the same
        # widths (reopening a file) changed them and back, and the whole tree was painted again
        widths = dict(enumerate(fit_columns(self.view, FIT_ROWS, caps, apply=False)))
        self._fit_to_tensors(caps, widths)
        widths[NAME] = min(max(widths[NAME], NAME_WIDTH[0]), NAME_WIDTH[1])
        moved_in = [c for c in range(BYTES + 1, header.count())
                    if header.visualIndex(c) < header.visualIndex(ELEMENTS)]
        for c in self._elided.difference(moved_in):
            self.view.setItemDelegateForColumn(c, None)
        for c in moved_in:
            self.view.setItemDelegateForColumn(c, self._elide_right)
        self._elided = set(moved_in)
        self._fitted = {c: widths[c] for c in (NAME, TYPE, *moved_in)}
        self._squeeze(widths)

    def _fit_to_tensors(self, caps: dict[int, int], widths: dict[int, int]) -> None:
        """Widen the metadata columns to the first ``FIT_ROWS`` tensors' text: in a deeply nested
        checkpoint the first screen shows groups only, and Shape and Dtype were fitted to their
        headers ("64 × 16" showed as "64…16")."""
        nodes = []
        for node in self.model.root.walk():
            if node.entry is not None:
                nodes.append(node)
                if len(nodes) >= FIT_ROWS:
                    break
        if not nodes:
            return
        fm = self.view.fontMetrics()
        pad = 2 * (self.view.style().pixelMetric(QStyle.PM_FocusFrameHMargin, None, self.view) + 1) \
            + SLACK
        icon = self.view.iconSize().width()
        icon = icon if icon > 0 else self.view.style().pixelMetric(QStyle.PM_SmallIconSize)
        step = self.view.indentation()

        def name_width(node) -> int:
            depth, up = 0, node.parent
            while up is not None:
                depth, up = depth + 1, up.parent
            return step * depth + icon + 4 + fm.horizontalAdvance(node.name) + pad

        for col in (NAME, TYPE, SHAPE, DTYPE, ELEMENTS, BYTES):
            if self.view.isColumnHidden(col):
                continue
            width = max(name_width(n) if col == NAME else
                        fm.horizontalAdvance(self.model.cell_text(n, col)) for n in nodes) + \
                (0 if col == NAME else pad)
            widths[col] = max(widths[col], min(width, caps.get(col, MAX_WIDTH)))

    def _squeeze(self, widths: dict[int, int] | None = None) -> None:
        """Give the fitted Name and Type columns back, or take from them (Type first) until
        Name, Type, Shape, Dtype and Elements fit the viewport; ``widths``: fitted anew."""
        if not self._fitted:
            return
        header = self.view.header()
        widths = {c: header.sectionSize(c) for c in range(header.count())} | (widths or {}) | self._fitted
        # what stands left of Bytes must fit (a comparison's Change column moves in next to Name);
        # Bytes and the live-model columns may scroll
        shown = [c for c in map(header.logicalIndex, range(header.visualIndex(ELEMENTS) + 1))
                 if not header.isSectionHidden(c)]
        excess = sum(widths[c] for c in shown) - self.view.viewport().width()
        moved_in = [c for c in shown if c > BYTES]
        for c in (TYPE, NAME, *moved_in):
            if excess <= 0:
                break
            give = max(0, min(excess, widths[c] - SQUEEZED.get(c, MOVED_IN_SQUEEZED)))
            if c == TYPE and give:  # all or nothing: a sliver of "parameter" reads as "..."
                give = widths[c]
            widths[c] -= give
            excess -= give
        for c, w in widths.items():
            if w != header.sectionSize(c) and not header.isSectionHidden(c):
                header.resizeSection(c, w)

    def preferred_width(self) -> int:
        """Wide enough for every column without a horizontal scroll bar."""
        header = self.view.header()
        columns = sum(self._fitted.get(c, header.sectionSize(c)) for c in range(header.count())
                      if not header.isSectionHidden(c))
        return columns + self.view.verticalScrollBar().sizeHint().width() + 2 * self.view.frameWidth()

    def _visible_rows(self) -> int:
        count, index = 0, self.view.indexAt(self.view.rect().topLeft())
        index = self.view.model().index(0, 0) if not index.isValid() else index
        while index.isValid() and count < 1000:
            count, index = count + 1, self.view.indexBelow(index)
        return count

    # -- selection -----------------------------------------------------------------------------
    def current_node(self):
        index = self.view.currentIndex()
        return index.data(NodeRole) if index.isValid() else None

    def select(self, full_name: str) -> bool:
        """Make ``full_name``'s row current (clearing a filter that hides it) and reveal it;
        the first selection of a tree just opened (``show_root(fit=True)``) is not revealed
        when that would expand a parent of more than ``WIDE_PARENT`` rows."""
        node = self.model.root.find(full_name)
        if node is None:
            return False
        index = self.view_index(node)
        if not index.isValid():  # hidden by the filter
            self.nonfinite_button.setChecked(False)
            self.filter.clear()
            self.apply_filter()
            index = self.view_index(node)
        source = self.model.index_of(node)
        opening, self._opened = self._opened, False
        if not opening or self.view.currentIndex().isValid() or not self._reveal_is_wide(source):
            self.view.scrollTo(index)  # expands collapsed ancestors
            self.view.setCurrentIndex(index)
            return True
        # The first row of a tree just opened (the window selects the first tensor then):
        # revealing it would lay out every row of a wide collapsed parent through the proxy
        # (~0.1 s for 2,500 layers), so it becomes current without expanding or scrolling.
        auto = self.view.hasAutoScroll()
        self.view.setAutoScroll(False)  # setCurrentIndex would scroll to it, expanding too
        try:
            self.view.setCurrentIndex(index)
        finally:
            self.view.setAutoScroll(auto)
        return True

    def _reveal_is_wide(self, source) -> bool:
        """Whether showing ``source``'s row expands a parent of more than ``WIDE_PARENT`` rows."""
        up = self.model.node(source).parent
        while up is not None and up is not self.model.root:
            if len(up.children) > WIDE_PARENT and not self.view.isExpanded(self.view_index(up)):
                return True
            up = up.parent
        return False

    def _start(self, task: Task) -> None:
        self._running.add(task)
        task.signals.done.connect(lambda task=task: self._running.discard(task))
        task.start()
