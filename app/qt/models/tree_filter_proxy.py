"""Filtering the module tree: ``TreeFilterProxy`` keeps the rows a filter pass matched (and their
ancestors), and ``name_matches`` is the plain name / glob test."""
from __future__ import annotations

import fnmatch

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel


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
    """Keeps the rows a filter pass matched (``set_matches``: indices into a ``NameIndex``) and
    their ancestors; ``extra_filter`` (compare's "only changed") is applied recursively.

    Whether a row is kept is one bisection over the matches (``NameIndex.shown``): rows are
    never matched through the view one by one, and recursive filtering (which walks every
    descendant of a rejected row) is on only for ``extra_filter``."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._pattern = ""
        self._index = None      # the NameIndex the matches refer to
        self._matches = None    # sorted indices, or None: no name filter
        self.extra_filter = None  # callable(Node) -> bool, e.g. "only changed" while comparing
        self.setRecursiveFilteringEnabled(False)

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
            self._set_filter(_pattern=text, _index=None, _matches=None)
            return
        index = self._index
        if index is None or index.root is not self.sourceModel().root:
            index = NameIndex(self.sourceModel().root)
        self._set_filter(_pattern=text, _index=index, _matches=index.matches(parse_filter(text)))

    def set_matches(self, index, matches: list[int] | None, text: str = "") -> None:
        """A new filter pass: the proxy is reset, not invalidated. Invalidating sent row
        removals and insertions for every expanded parent, which the view applies one range at
        a time: 6-16 s per keystroke at 5000 tensors once a filter had expanded rows."""
        self.beginResetModel()
        self._pattern, self._index, self._matches = text, index, matches
        self.endResetModel()

    def clear_matches(self) -> None:
        if self._matches is not None:
            self.set_matches(None, None)

    def set_extra_filter(self, accepts) -> None:
        self.setRecursiveFilteringEnabled(accepts is not None)
        self._set_filter(extra_filter=accepts)

    def _set_filter(self, **attrs) -> None:
        if hasattr(self, "endFilterChange"):  # Qt >= 6.10 deprecates invalidateFilter()
            self.beginFilterChange()
            for k, v in attrs.items():
                setattr(self, k, v)
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            for k, v in attrs.items():
                setattr(self, k, v)
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex) -> bool:
        if self._matches is None and self.extra_filter is None:
            return True
        model = self.sourceModel()
        parent = model.node(source_parent)
        children = parent.children
        if source_row >= len(children):
            return False
        node = children[source_row]
        if self.extra_filter is not None and not self.extra_filter(node):
            return False
        return self._matches is None or self._index.shown(node, self._matches)
