"""Which children of a tree node the tree model shows, and how many of them it has handed out.

Two things keep the view's work proportional to what is on screen at 100k tensors:

- a name filter is applied here, per parent and only for the parents the view asks about
  (one byte per child of the ``NameIndex``'s ``visibility``, made for every node at once in
  numpy), so the model itself holds only the matches and their ancestors: no proxy asks a
  Python ``filterAcceptsRow`` per row, and a new pattern is one model reset;
- a parent with more than ``CHUNK`` shown children gives them out ``CHUNK`` at a time (more
  when the view is scrolled to the end, ``tree_fetch``): expanding 2,500 layers, or
  expanding all, lays out a few hundred rows, not 100k.

Plain Python (no Qt): ``TreeModel`` wraps it and sends the signals.
"""
from __future__ import annotations

#: rows of one parent handed to the view at a time
CHUNK = 256


class ShownRows:
    """The shown children of each node (``kids``), their rows (``row``) and the fetched counts."""

    def __init__(self, root):
        self.root = root
        self.index = None     # the NameIndex that ``matches`` refer to
        self.matches = None   # sorted node positions in ``index``, or None: no filter
        self._shown = self._below = b""  # per node of ``index``: shown; has a match below
        self.lazy = True      # False: every row at once (a sorting or recursive proxy needs all)
        self.want_lazy = True  # what ``lazy`` becomes at the next reset
        self._kids: dict[int, list] = {}
        self._rows: dict[int, int] = {}
        self._fetched: dict[int, int] = {}
        self.partial: dict[int, object] = {}  # the nodes whose rows were cut short so far

    def reset(self, root=None, index=None, matches=None) -> None:
        if root is not None:
            self.root = root
        self.index, self.matches = index, matches
        if matches is not None:
            seen = index.visibility(matches)
            self._shown, self._below = seen.shown, seen.below
        self.lazy = self.want_lazy
        self._kids.clear()
        self._rows.clear()
        self._fetched.clear()
        self.partial.clear()

    # -- structure -------------------------------------------------------------------------
    def kids(self, node) -> list:
        """The children of ``node`` the tree shows (all of them without a filter)."""
        if self.matches is None:
            return node.children
        kids = self._kids.get(id(node))
        if kids is None:
            shown, pos = self._shown, self.index.pos
            kids = [c for c in node.children if shown[pos.get(id(c), -1)]]
            self._kids[id(node)] = kids
            rows = self._rows
            for i, c in enumerate(kids):
                rows[id(c)] = i
        return kids

    def count(self, node) -> int:
        """How many of ``node``'s shown children the view has been given."""
        n = len(node.children) if self.matches is None else len(self.kids(node))
        if n > CHUNK and self.lazy:
            have = self._fetched.get(id(node), CHUNK)
            if have < n:
                self.partial[id(node)] = node
                return have
        return n

    def has_kids(self, node) -> bool:
        if self.matches is None:
            return bool(node.children)
        i = self.index.pos.get(id(node))
        if i is None:
            return node is self.root and bool(self.matches)
        return bool(self._below[i])

    def row(self, node) -> int:
        """``node``'s row under its parent, -1 when the filter hides it."""
        if self.matches is None:
            return node.index_in_parent()
        row = self._rows.get(id(node))
        if row is None:
            self.kids(node.parent)
            row = self._rows.get(id(node), -1)
        return row

    def more(self, node) -> tuple[int, int] | None:
        """The rows a ``fetchMore`` of ``node`` adds, as (first, last + 1), or None."""
        have, total = self.count(node), len(self.kids(node))
        return (have, min(total, have + CHUNK)) if have < total else None

    def fetched(self, node, upto: int) -> None:
        self._fetched[id(node)] = upto
        if upto >= len(self.kids(node)):
            self.partial.pop(id(node), None)
