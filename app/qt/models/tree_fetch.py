"""Handing a wide parent's rows to the view a chunk at a time (``canFetchMore``/``fetchMore``),
and all at once when a proxy must see every row. A mixin of ``tree_model.TreeModel``, whose
``shown`` (``shown_rows.ShownRows``) says which rows exist and how many are handed out."""
from __future__ import annotations

from PySide6.QtCore import QModelIndex

from .shown_rows import CHUNK


class FetchRows:
    """``TreeModel``'s lazy rows (mixed into it)."""

    def set_lazy(self, lazy: bool) -> None:
        """Whether wide parents give their rows out a chunk at a time; turning it off hands the
        view every remaining row (a sorting or recursively filtering proxy needs them all)."""
        shown = self.shown
        if lazy == shown.lazy:
            return
        if lazy:
            self.beginResetModel()
            shown.lazy = True
            shown.reset(None, shown.index, shown.matches)
            self.endResetModel()
            return
        root = self._root
        for node in [n for n in root.walk() if len(n.children) > CHUNK]:  # parents first
            if node is not root and shown.row(node) < 0:
                continue  # the filter hides it
            self._fetch(node, len(shown.kids(node)))
        shown.lazy = False

    def canFetchMore(self, parent: QModelIndex) -> bool:
        node = self.node(parent)
        return self.shown.lazy and self.shown.count(node) < len(self.shown.kids(node))

    def fetchMore(self, parent: QModelIndex) -> None:
        self._fetch(self.node(parent), None)

    def _fetch(self, node, upto: int | None) -> None:
        """The next chunk of ``node``'s rows, or as many chunks as reach row ``upto``."""
        more = self.shown.more(node)
        if more is None:
            return
        first, last = more
        if upto is not None:
            last = min(len(self.shown.kids(node)), max(last, (upto // CHUNK + 1) * CHUNK))
        parent = self.index_of(node) if node is not self._root else QModelIndex()
        self.beginInsertRows(parent, first, last - 1)
        self.shown.fetched(node, last)
        self.endInsertRows()

    def reveal(self, node) -> bool:
        """Hand the view the rows down to ``node`` (fetching chunks of wide parents); False
        when the filter hides it."""
        chain = []
        while node is not None and node is not self._root:
            chain.append(node)
            node = node.parent
        for node in reversed(chain):
            row = self.shown.row(node)
            if row < 0:
                return False
            if row >= self.shown.count(node.parent):
                self._fetch(node.parent, row)
        return True
