"""The module tree panel's filtering: the flat name index (built in a worker), running the filter
box's text over it, showing and expanding the matches, and the NaN/Inf scan. A mixin of
``tree_panel.ModuleTreePanel``, which holds the widgets, the view and its columns."""
from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPoint

from ...core.errors import UserError, first_line
from ...core.model.nonfinite import nonfinite_names
from ...core.tree_filter import NameIndex, parse_filter
from ..models.tree_model import NodeRole
from ..progress import show_progress
from ..workers import Task

#: at most this many matches have their ancestors expanded
EXPAND_CAP = 50
#: a ``re:`` term waits this long for the next key before the filter runs (a regex pass can
#: take a while, and a half-typed one is an error); other text runs at the next turn of the
#: event loop (a pass takes 15-30 ms at 100k tensors, and keys typed meanwhile make one pass):
#: waiting 150 ms for every key made the tree answer each one 150 ms late
DEBOUNCE_MS = 150


class TreeFiltering:
    """The filter and the NaN/Inf scan of ``ModuleTreePanel`` (mixed into it)."""

    # -- the name index --------------------------------------------------------------------
    def _build_index(self) -> None:
        """Index the tree's names in a worker (100k tensors: ~0.5 s of Python off the GUI).

        Started when the filter is first used, not on opening: a Python worker running while
        the view lays out the new tree makes each of the view's calls into the model wait for
        the interpreter lock (opening 100k tensors blocked the GUI thread for seconds)."""
        root = self.model.root
        if (self._index is not None and self._index.root is root) or (
                self._index_task is not None and self._index_root is root):
            return
        self._index_root = root
        if not root.children:
            self._index = NameIndex(root)
            return
        task = Task(lambda progress, cancelled: NameIndex(root), reads_mapped=False)
        task.signals.finished.connect(lambda index, root=root: self._index_ready(root, index))
        self._index_task = task
        self._start(task)

    def _index_ready(self, root, index: NameIndex) -> None:
        if root is not self.model.root:  # a newer tree replaced it meanwhile
            return
        self._index, self._index_task = index, None
        if self.filter.text().strip() and not self._debounce.isActive():
            self.apply_filter()

    def name_index(self) -> NameIndex:
        """The index of the tree shown (built here if its task has not finished yet)."""
        if self._index is None or self._index.root is not self.model.root:
            self._index = NameIndex(self.model.root)
        return self._index

    # -- filtering -----------------------------------------------------------------------------
    def _filter_changed(self, text: str) -> None:
        self._build_index()
        if self.nonfinite_button.isChecked():  # typing leaves the NaN/Inf view
            self.cancel_scan()
            self.nonfinite_button.setChecked(False)
        self._debounce.start(DEBOUNCE_MS if "re:" in text else 0)

    def apply_filter(self) -> None:
        """Run the filter box's text now (the debounce timer calls it)."""
        self._debounce.stop()
        text = self.filter.text()
        if not text.strip():
            self._show_message("")
            if self.proxy.matches is not None:
                self._show_matches(None, None)
            self.filterApplied.emit(-1)
            return
        if self._index is None or self._index.root is not self.model.root:
            self._build_index()
            if self._index_task is not None:
                return  # applied when the index is ready
        try:
            flt = parse_filter(text)
            index = self.name_index()
            matches = index.answer(flt)
        except UserError as exc:
            self._show_message(first_line(exc), error=True)
            return
        self._show_message("" if matches else "no match")
        self._show_matches(index, matches)

    def _show_matches(self, index: NameIndex | None, matches: Sequence[int] | None) -> None:
        """Reset the proxy to the matches (None: every row), expand the first of them (or the
        first levels) and keep the current row, without telling the controller: what it shows
        does not change."""
        current = self.current_node()
        selection = self.view.selectionModel()
        selection.blockSignals(True)
        try:
            self.proxy.set_matches(index, matches)
            if matches is None:
                self._expand_first_levels(self.model.root)
            else:
                self._expand_matches(index, matches)
            if current is not None:
                shown = self.view_index(current)
                if shown.isValid():
                    self.view.setCurrentIndex(shown)
                    self.view.scrollTo(shown)
        finally:
            selection.blockSignals(False)
        # laid out now, not on the first paint: the new scroll range would call for a second
        # paint (a keystroke at 100k tensors painted the tree three times)
        self.view.executeDelayedItemsLayout()
        self.view.viewport().update()
        if matches is not None:
            self.filterApplied.emit(len(matches))

    def _expand_matches(self, index: NameIndex, matches: Sequence[int]) -> None:
        """Expand the ancestors of the first matches, as many as fill the viewport (at most
        ``EXPAND_CAP``), never the whole tree; the others are expanded as they scroll into
        view (``_expand_in_view``). Only marked expanded here: laid out once, afterwards."""
        seen = self._auto_expanded = set()
        fit = self.view.viewport().height() // max(1, self.view.fontMetrics().height())
        for n, i in enumerate(matches[:EXPAND_CAP]):
            for node in index.ancestors(i):
                if id(node) not in seen:
                    seen.add(id(node))
                    self.view.setExpanded(self.view_index(node), True)
            if len(seen) + n + 1 > fit:  # the rows down to this match fill the viewport
                break

    def _expand_in_view(self) -> None:
        """While a filter shows: expand the collapsed rows on screen that hold matches, once
        each (a row the user collapses stays collapsed)."""
        view, model = self.view, self.model
        if model.shown.matches is None or view.model() is not model:
            return
        seen, bottom = self._auto_expanded, view.viewport().height()
        index = view.indexAt(QPoint(0, 0))
        for _ in range(1000):  # at most a screenful of rows
            if not index.isValid() or view.visualRect(index).top() > bottom:
                break
            node = index.internalPointer()
            if id(node) not in seen and not view.isExpanded(index) and model.hasChildren(index):
                seen.add(id(node))
                view.expand(index)
            index = view.indexBelow(index)

    def _user_collapsed(self, index) -> None:
        self._auto_expanded.add(id(self.view.model().data(index, NodeRole)))

    def _show_message(self, text: str, error: bool = False) -> None:
        self.filter_message.setText(text)
        self.filter_message.setStyleSheet("color: #b00020;" if error else "")
        self.filter_message.setVisible(bool(text))

    # -- NaN / Inf -----------------------------------------------------------------------------
    def _nonfinite_clicked(self, checked: bool) -> None:
        if checked:
            self.scan_nonfinite()
        else:
            self.cancel_scan()
            self.apply_filter()  # back to what the box says

    def scan_nonfinite(self) -> None:
        """Scan every tensor for NaN/Inf in a worker; filter the tree to those that have any."""
        self.cancel_scan()
        root = self.model.root
        entries = [n.entry for n in root.walk() if n.entry is not None]
        self.nonfinite_button.setChecked(bool(entries))
        if not entries:
            return
        task = Task(lambda progress, cancelled: nonfinite_names(entries, progress, cancelled))
        task.signals.progress.connect(lambda done, total: show_progress(self.scan_progress, done, total))
        task.signals.finished.connect(lambda names, root=root: self._scan_done(root, names))
        task.signals.failed.connect(lambda exc, _tb: self._scan_failed(exc))
        task.signals.done.connect(lambda task=task: self._scan_ended(task))
        self._scan_task = task
        self.scan_progress.setValue(0)
        self.scan_progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self._start(task)

    def cancel_scan(self) -> None:
        if self._scan_task is not None:
            self._scan_task.cancel()
            self._scan_ended(self._scan_task)
            self.nonfinite_button.setChecked(False)

    @property
    def is_scanning(self) -> bool:
        return self._scan_task is not None

    def _scan_ended(self, task: Task) -> None:
        if task is self._scan_task:
            self._scan_task = None
            self.scan_progress.setVisible(False)
            self.cancel_button.setVisible(False)

    def _scan_failed(self, exc) -> None:
        self.nonfinite_button.setChecked(False)
        self._show_message(f"NaN/Inf scan failed: {first_line(exc)}", error=True)

    def _scan_done(self, root, names: list[str]) -> None:
        if root is not self.model.root:
            return
        self.nonfinite = list(names)
        index = self.name_index()
        wanted = set(names)
        matches = [i for i, n in enumerate(index.nodes) if n.entry is not None
                   and n.entry.name in wanted]
        self._debounce.stop()
        count = len(names)
        if not count:
            self.nonfinite_button.setChecked(False)
        self._show_message(f"{count} tensor{'s' if count != 1 else ''} with NaN/Inf"
                           if count else "no tensor holds NaN or Inf")
        if count:
            self._show_matches(index, matches)
