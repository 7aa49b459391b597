"""Handing a wide parent's rows to the view a chunk at a time, and all at once when a proxy must
see every row. A mixin of ``tree_model.TreeModel``, whose ``shown`` (``shown_rows.ShownRows``)
says which rows exist and how many are handed out.

Not through Qt's ``canFetchMore``/``fetchMore``: ``QTreeView`` fetches in every layout pass of
an expanded parent, and each fetch lays the tree out again, so one expand fetched chunk after
chunk. The tree panel asks for the next chunk when the view is scrolled to its end
(``fetch_more``), and ``reveal`` fetches down to a row that is selected."""
from __future__ import annotations

from PySide6.QtCore import QModelIndex

from .shown_rows import CHUNK


class FetchRows:
    """``TreeModel``'s lazy rows (mixed into it)."""

    def set_lazy(self, lazy: bool) -> None:
        """Whether wide parents give their rows out a chunk at a time; turning it off hands the
        view every remaining row at once (a sorting or recursively filtering proxy needs them
        all); turning it on takes effect with the next reset (rows are never taken back)."""
        shown = self.shown
        shown.want_lazy = lazy
        if lazy or not shown.lazy:
            return
        root = self._root
        for node in [n for n in root.walk() if len(n.children) > CHUNK]:  # parents first
            if node is not root and shown.row(node) < 0:
                continue  # the filter hides it
            self._fetch(node, len(shown.kids(node)))
        shown.lazy = False

    def can_fetch_more(self, node) -> bool:
        return self.shown.count(node) < len(self.shown.kids(node))

    def fetch_more(self, node) -> None:
        """Hand the view ``node``'s next ``CHUNK`` rows."""
        self._fetch(node, None)

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
