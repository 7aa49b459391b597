"""The module tree as a Qt model: a thin adapter over ``app.core.model.tree.Node``.

Each index carries its ``Node`` as the internal pointer (napari style); the nodes stay alive
because the model holds the root. Nothing is copied: rows are the nodes' own children lists, or,
while a name filter is set (``set_filter``), the matches and their ancestors; wide parents give
their rows out a chunk at a time (``shown_rows``).
"""
from __future__ import annotations

import os
from functools import lru_cache

from PySide6.QtCore import QAbstractItemModel, QModelIndex, Qt
from PySide6.QtGui import QColor, QFont, QIcon

from ...core.report import human_count, human_size
from ...core.model.tree import ENTRY, GROUP, MODULE, ROOT, Node
from . import param_columns
from ..icons import resource_dir
from .shown_rows import CHUNK, ShownRows
from .tree_fetch import FetchRows
from .tree_filter_proxy import TreeFilterProxy, is_glob, name_matches  # noqa: F401  (re-exported)

NAME, TYPE, SHAPE, DTYPE, ELEMENTS, BYTES = range(6)
HEADERS = ("Name", "Type", "Shape", "Dtype", "Elements", "Bytes", *param_columns.HEADERS)
GRAD, RATIO, DEVICE = range(len(HEADERS) - 3, len(HEADERS))  # live-model columns, last
#: data role holding the Node itself (tests and the window use it)
NodeRole = Qt.UserRole + 1


def _role(r) -> int:
    return int(getattr(r, "value", r))


# Roles as plain ints: comparing an int with a PySide6 enum costs ~25 us, and ``data`` is called
# thousands of times per repaint or column fit (a 2 s stall on opening a 160-tensor checkpoint).
_DISPLAY, _USER, _NODE = _role(Qt.DisplayRole), _role(Qt.UserRole), _role(NodeRole)
_ALIGN, _DECORATION, _TOOLTIP = _role(Qt.TextAlignmentRole), _role(Qt.DecorationRole), _role(Qt.ToolTipRole)
_FOREGROUND, _FONT = _role(Qt.ForegroundRole), _role(Qt.FontRole)
_RIGHT = int(_role(Qt.AlignRight) | _role(Qt.AlignVCenter))
_FLAGS = Qt.ItemIsEnabled | Qt.ItemIsSelectable
MODIFIED_COLOR, NOTE_COLOR, FROZEN_COLOR = QColor(200, 90, 0), QColor(176, 0, 32), QColor(120, 120, 120)
RESOURCES = resource_dir()


@lru_cache(maxsize=None)
def icon(name: str) -> QIcon:
    return QIcon(os.path.join(RESOURCES, name))


def shape_text(shape: tuple[int, ...]) -> str:
    return " × ".join(str(s) for s in shape) if shape else "scalar"


def tied_module_aliases(node: Node) -> list[str]:
    """Other paths of a module whose own tensors are all tied to another module (a shared module)."""
    own = [c.entry for c in node.children if c.entry is not None]
    if not own or not all(e.shared_with for e in own):
        return []
    aliases: set[str] | None = None
    for c in node.children:
        if c.entry is None:
            continue
        suffix = "." + c.name
        paths = {a[: -len(suffix)] for a in c.entry.shared_with if a.endswith(suffix)}
        aliases = paths if aliases is None else aliases & paths
    return sorted(aliases or ())


class TreeModel(FetchRows, QAbstractItemModel):
    """Columns: name, type, shape, dtype, elements (tied storage once), bytes."""

    def __init__(self, root: Node | None = None, parent=None):
        super().__init__(parent)
        self._root = root if root is not None else Node("", ROOT)
        self._by_name: dict[str, Node] | None = None
        self.shown = ShownRows(self._root)
        self.modified: set[str] = set()   # tensors changed since the document was opened
        self.notes: dict[str, str] = {}   # warnings per tensor (e.g. missing from the checkpoint)
        #: an extra last column (compare_columns.ChangeColumn) with ``header`` and
        #: ``data(node, role)``; its background colours the whole row
        self.extra_column = None
        self._ncols = len(HEADERS)
        self.resets = 0                   # how often the whole tree was rebuilt (tests count it)
        self.params = param_columns.ParamColumns()  # gradients, device, module info

    # -- structure ----------------------------------------------------------------------------
    @property
    def root(self) -> Node:
        return self._root

    def set_root(self, root: Node) -> None:
        self.beginResetModel()
        self._root = root
        self._by_name = None
        self.shown.reset(root)
        self.params.clear_cache()
        self.endResetModel()
        self.resets += 1

    def set_filter(self, index, matches: list[int] | None) -> None:
        """Show only ``matches`` (sorted positions in the ``NameIndex`` ``index``) and their
        ancestors; None: every node. One reset: nothing is laid out until the view asks."""
        self.beginResetModel()
        self.shown.reset(None, index, matches)
        self.endResetModel()

    def reset_marks(self, notes: dict[str, str] | None = None) -> None:
        """A new document: nothing modified yet; ``notes`` are per-tensor warnings."""
        self.modified = set()
        self.notes = dict(notes or {})

    def node_for(self, full_name: str) -> Node | None:
        if self._by_name is None:
            self._by_name = {n.full_name: n for n in self._root.walk() if n.entry is not None}
        return self._by_name.get(full_name)

    def tensors_changed(self, names, modified: bool = True) -> None:
        """Tensors were edited (or an edit undone): repaint their rows and their ancestors'.

        One ``dataChanged`` per parent whose children changed, over the span of those rows: a
        cast of every tensor sent one signal per tensor and ancestor through the filter proxy
        (hundreds of milliseconds on the GUI thread), and finding each row by its position in a
        wide parent was quadratic."""
        changed: set[int] = set()
        parents: dict[int, tuple[Node, list[Node]]] = {}
        for name in names:
            if modified:
                self.modified.add(name)
            node = self.node_for(name)
            if node is None:
                continue
            node.invalidate_totals()
            while node is not None and node is not self._root and id(node) not in changed:
                changed.add(id(node))
                parents.setdefault(id(node.parent), (node.parent, []))[1].append(node)
                node = node.parent
        last_column = len(HEADERS) - 1
        shown = self.shown
        for parent, nodes in parents.values():
            count = shown.count(parent)
            rows = sorted(r for r in map(shown.row, nodes) if 0 <= r < count)  # laid out only
            if rows:
                kids, first, last = shown.kids(parent), rows[0], rows[-1]
                self.dataChanged.emit(self.createIndex(first, 0, kids[first]),
                                      self.createIndex(last, last_column, kids[last]))

    def node(self, index: QModelIndex) -> Node:
        return index.internalPointer() if index.isValid() else self._root

    def index(self, row: int, column: int, parent: QModelIndex = QModelIndex()) -> QModelIndex:
        # asked for every row the view lays out: hasIndex() would call back into rowCount and
        # columnCount through Qt, so it is checked here, with no further Python calls
        if row < 0 or not 0 <= column < self._ncols:
            return QModelIndex()
        if parent.isValid():
            if parent.column() != 0:
                return QModelIndex()
            node = parent.internalPointer()
        else:
            node = self._root
        shown = self.shown
        children = node.children if shown.matches is None else shown.kids(node)
        if row >= len(children) or (row >= CHUNK and shown.lazy and row >= shown.count(node)):
            return QModelIndex()
        return self.createIndex(row, column, children[row])

    def parent(self, index: QModelIndex = QModelIndex()) -> QModelIndex:  # type: ignore[override]
        if not index.isValid():
            return QModelIndex()
        up = index.internalPointer().parent
        if up is None or up is self._root:
            return QModelIndex()
        return self.createIndex(self.shown.row(up), 0, up)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        if parent.isValid() and parent.column() != 0:
            return 0
        return self.shown.count(self.node(parent))

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return self._columns

    @property
    def _columns(self) -> int:  # asked per index(): kept as a plain attribute
        return self._ncols

    def set_extra_column(self, column) -> None:
        self.beginResetModel()
        self.extra_column = column
        self._ncols = len(HEADERS) + (column is not None)
        self.endResetModel()

    def hasChildren(self, parent: QModelIndex = QModelIndex()) -> bool:
        # asked for every row of every expanded parent while the view lays out: kept lean
        if not parent.isValid():
            return self.shown.has_kids(self._root)
        if parent.column() != 0:
            return False
        if self.shown.matches is None:
            return bool(parent.internalPointer().children)
        return self.shown.has_kids(parent.internalPointer())

    def index_of(self, node: Node, column: int = 0) -> QModelIndex:
        """``node``'s index; invalid when the filter hides it or its row is not fetched yet
        (``reveal`` fetches it)."""
        if node is self._root or node.parent is None:
            return QModelIndex()
        row = self.shown.row(node)
        if row < 0 or row >= self.shown.count(node.parent):
            return QModelIndex()
        return self.createIndex(row, column, node)

    def find(self, full_name: str) -> QModelIndex:
        """The index of the named node, its row fetched; invalid when absent or filtered out."""
        node = self._root.find(full_name)
        return self.index_of(node) if node is not None and self.reveal(node) else QModelIndex()

    def node_changed(self, node: Node) -> None:
        """A node's tensor changed shape/dtype/size: refresh it and its ancestors' totals."""
        node.invalidate_totals()
        while node is not None and node is not self._root:
            first = self.index_of(node, 0)
            if first.isValid():
                self.dataChanged.emit(first, self.index_of(node, len(HEADERS) - 1))
            node = node.parent

    # -- content ------------------------------------------------------------------------------
    def headerData(self, section: int, orientation, role=Qt.DisplayRole):
        if orientation == Qt.Horizontal:
            if role == Qt.DisplayRole:
                return HEADERS[section] if section < len(HEADERS) else self.extra_column.header
            if role == Qt.TextAlignmentRole and section >= ELEMENTS:
                return int(Qt.AlignRight | Qt.AlignVCenter)
        return None

    def flags(self, index: QModelIndex):
        if not index.isValid():
            return Qt.NoItemFlags
        return _FLAGS

    def multiData(self, index: QModelIndex, roles) -> None:  # noqa: N802 (Qt's name)
        """Every role a cell's delegate asks for (seven) in one call from Qt: one Python call
        per painted cell instead of one per role (a repaint after a keystroke asked ~1,900)."""
        if index.isValid():
            data = self.data
            for item in roles:
                item.setData(data(index, item.role()))

    def data(self, index: QModelIndex, role=_DISPLAY):
        if not index.isValid():
            return None
        if type(role) is not int:
            role = _role(role)
        node: Node = index.internalPointer()
        col = index.column()
        if self.extra_column is not None and (col == len(HEADERS) or self.extra_column.colours(role)):
            return self.extra_column.data(node, role)
        if role == _DISPLAY:
            return self._text(node, col)
        if role == _USER:
            return node.full_name
        if role == _NODE:
            return node
        if role == _ALIGN and col >= ELEMENTS:
            return _RIGHT
        if role == _DECORATION and col == NAME:
            return self._icon(node)
        if role == _TOOLTIP:  # every cell's full text first: narrow columns elide it
            cell = self._text(node, col) if col != NAME else ""
            cell = f"{HEADERS[col]}: {cell}" if cell else ""
            text, extra = self._tooltip(node), self.params.tooltip(node)
            return "\n".join(t for t in (cell, text, extra) if t) or None
        if col == GRAD and role == _FOREGROUND and self.params.nonfinite(node):
            return NOTE_COLOR
        if node.entry is not None and (role == _FOREGROUND or role == _FONT):
            return self._style(node, role)
        return None

    def _style(self, node: Node, role: int):
        name = node.entry.name
        if role == _FONT:
            if name in self.modified:
                font = QFont()
                font.setItalic(True)
                return font
            return None
        if name in self.notes:
            return NOTE_COLOR
        if name in self.modified:
            return MODIFIED_COLOR
        if node.entry.requires_grad is False:
            return FROZEN_COLOR
        return None

    def cell_text(self, node: Node, col: int) -> str:
        """The text a cell of ``node`` shows in column ``col``."""
        return self._text(node, col)

    def _text(self, node: Node, col: int) -> str:
        e = node.entry
        if col >= GRAD:
            return self.params.text(node, col - GRAD)
        if col == NAME:
            return node.name
        if col == TYPE:
            if node.kind == ENTRY:
                return node.summary
            if e is not None and e.requires_grad is False:
                return f"{node.type_name} (frozen)"
            if getattr(node.module, "training", True) is False:
                return f"{node.type_name} (eval)"
            return node.type_name
        if node.kind == ENTRY:
            return ""
        if col == SHAPE:
            return shape_text(e.shape) if e is not None else ""
        if col == DTYPE:
            return e.dtype_label if e is not None else ""
        numel, nbytes = (e.numel, e.nbytes) if e is not None else node.totals()
        return human_count(numel) if col == ELEMENTS else human_size(nbytes)

    def _icon(self, node: Node):
        if node.entry is not None:
            return icon("link.svg") if node.entry.shared_with else icon("tensor.svg")
        if node.kind == MODULE and tied_module_aliases(node):
            return icon("link.svg")
        if node.kind in (MODULE, GROUP):
            return icon("module.svg")
        return None

    def _tooltip(self, node: Node) -> str | None:
        e = node.entry
        if e is not None:
            text = f"{e.name}\n{e.kind}, {shape_text(e.shape)}, {e.dtype_name}"
            if e.shared_with:
                text += ("\nTied: the same storage is also "
                         + ", ".join(e.shared_with) + ".\nEditing one edits all; counted once.")
            if e.requires_grad is False:
                text += "\nFrozen: requires_grad is False."
            if e.name in self.modified:
                text += "\nModified since opened."
            if e.name in self.notes:
                text += "\n" + self.notes[e.name]
            return text
        if node.kind == ENTRY:
            return f"{node.name}: {node.summary}"
        aliases = tied_module_aliases(node) if node.kind == MODULE else []
        text = f"{node.full_name} ({node.type_name})" if node.type_name else node.full_name
        if aliases:
            text += "\nShared module: the same parameters as " + ", ".join(aliases) + "."
        return text
