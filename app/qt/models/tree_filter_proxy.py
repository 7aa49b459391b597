"""Filtering the module tree: ``TreeFilterProxy`` hands a filter pass to the tree model and
applies compare's filter and sort, and ``name_matches`` is the plain name / glob test."""
from __future__ import annotations

import fnmatch

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt, Signal


def is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def name_matches(full_name: str, pattern: str) -> bool:
    """Case-insensitive substring, or ``fnmatch`` glob when the text has * ? or [.

    A glob may match the whole name or any tail that starts at a dot (``bn.running_*`` finds
    ``conv.bn.running_mean``), so that nested names need no leading ``*.``.
    """
    pattern, name = pattern.strip().lower(), full_name.lower()
    if not pattern:
        return True
    if not is_glob(pattern):
        return pattern in name
    parts = name.split(".")
    return any(fnmatch.fnmatchcase(".".join(parts[i:]), pattern) for i in range(len(parts)))


class TreeFilterProxy(QSortFilterProxyModel):
    """The filters and sort over the tree model: a name filter pass (``set_matches``: indices
    into a ``NameIndex``) is handed to the source ``TreeModel``, which then holds only the
    matches and their ancestors; here only ``extra_filter`` (compare's "only changed",
    recursive) and sorting are applied.

    Asking a Python ``filterAcceptsRow`` per row cost the view a call per row it laid out
    (2,500 siblings per keystroke at 100k tensors); without ``extra_filter`` it answers at
    once. While this proxy sorts or filters, the source hands out every row (``set_lazy``):
    a sort or a recursive filter over a partly fetched parent would be wrong.

    The tree panel's view shows the source model itself unless this proxy is ``active`` (it
    doubled the Python calls of every row laid out and every cell painted): ``activeChanged``
    tells it when to switch."""

    #: whether the view needs this proxy (compare's filter or a sort) changed
    activeChanged = Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._pattern = ""
        self._index = None      # the NameIndex the matches refer to
        self._matches = None    # sorted indices, or None: no name filter
        self.extra_filter = None  # callable(Node) -> bool, e.g. "only changed" while comparing
        self.setRecursiveFilteringEnabled(False)

    @property
    def active(self) -> bool:
        """Whether the rows differ from the source's: compare's filter, or a sort."""
        return self.extra_filter is not None or self.sortColumn() >= 0

    @property
    def pattern(self) -> str:
        return self._pattern

    @property
    def matches(self) -> list[int] | None:
        return self._matches

    def set_pattern(self, text: str) -> None:
        """Filter by ``text`` at once (``core.tree_filter`` syntax) over an index built here."""
        from ...core.tree_filter import NameIndex, parse_filter
        if not text.strip():
            self.set_matches(None, None, text)
            return
        index = self._index
        if index is None or index.root is not self.sourceModel().root:
            index = NameIndex(self.sourceModel().root)
        self.set_matches(index, index.matches(parse_filter(text)), text)

    def set_matches(self, index, matches: list[int] | None, text: str = "") -> None:
        """A new filter pass: the source model is reset to the matches (one reset; it once
        invalidated this proxy, whose row removals and insertions for every expanded parent
        took 6-16 s per keystroke at 5000 tensors)."""
        self._pattern, self._index, self._matches = text, index, matches
        self.sourceModel().set_filter(index, matches)

    def clear_matches(self) -> None:
        if self._matches is not None:
            self.set_matches(None, None)

    def set_extra_filter(self, accepts) -> None:
        was = self.active
        self._update_lazy(accepts, self.sortColumn())
        self.setRecursiveFilteringEnabled(accepts is not None)
        if hasattr(self, "endFilterChange"):  # Qt >= 6.10 deprecates invalidateFilter()
            self.beginFilterChange()
            self.extra_filter = accepts
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.extra_filter = accepts
            self.invalidateFilter()
        if self.active != was:
            self.activeChanged.emit(self.active)

    def sort(self, column: int, order=Qt.AscendingOrder) -> None:
        was = self.active
        self._update_lazy(self.extra_filter, column)
        super().sort(column, order)
        if self.active != was:
            self.activeChanged.emit(self.active)

    def _update_lazy(self, accepts, column: int) -> None:
        source = self.sourceModel()
        if source is not None and hasattr(source, "set_lazy"):
            source.set_lazy(accepts is None and column < 0)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex) -> bool:
        accepts = self.extra_filter
        if accepts is None:
            return True
        index = self.sourceModel().index(source_row, 0, source_parent)
        return index.isValid() and accepts(index.internalPointer())
