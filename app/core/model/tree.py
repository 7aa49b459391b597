"""The tree shown to the user: modules from ``named_children``, or groups from dotted names."""
from __future__ import annotations

import weakref
from math import prod
from typing import Iterator

import torch

from .dtypes import _element_size
from .tensor_entry import BUFFER, PARAMETER, TENSOR, TensorEntry
from .ties import unique_entries

ROOT, MODULE, GROUP, ENTRY = "root", "module", "group", "entry"
TENSOR_KINDS = ("parameter", "buffer", "tensor")
MAX_NAME_LEVELS = 64


class Node:
    """A pure tree node. ``kind`` is root/module/group/entry or a tensor kind.

    A node holds its children; its ``parent`` is a weak reference, so a tree has no reference
    cycle: a replaced tree (an edit that renames, a document opened again) is freed at once with
    the tensors its entries hold, instead of waiting for Python's rare full garbage collection
    (a checkpoint's memory map stayed alive per replaced tree: the soak's RSS grew without bound).
    A node kept after its tree went (the selection across a rebuild) has no parent, but still
    knows its ``full_name``: a group's is set when it is placed.

    A checkpoint may hold 100k tensors, so a node is small: a tensor's node has no children
    (an empty tuple shared by all) and no totals of its own (its entry's shape says them); a
    group keeps its sums as two ints, not a tuple.
    """

    __slots__ = ("name", "kind", "type_name", "_parent", "_path", "children", "entry", "summary",
                 "_numel", "_nbytes", "_tied", "_row", "module", "__weakref__")

    def __init__(self, name: str, kind: str, type_name: str = "", parent: "Node | None" = None,
                 entry: TensorEntry | None = None, summary: str = ""):
        self.name = name
        self.kind = kind
        self.type_name = type_name
        self.children: list[Node] = [] if entry is None else _NO_CHILDREN
        self.entry = entry
        self.parent = parent
        self.summary = summary
        self._numel = -1    # the subtree's sums; -1 until summed (a group's only)
        self._nbytes = 0
        self._tied = False  # some tensor below is tied: totals count its storage once
        self._row = -1      # position in the parent's children (checked before use)
        self.module = None  # the nn.Module of a live model's module node
        if parent is not None:
            parent.children.append(self)

    @property
    def parent(self) -> "Node | None":
        up = self._parent
        return up() if up is not None else None

    @parent.setter
    def parent(self, node: "Node | None") -> None:
        """Place this node under ``node`` (the caller adds it to ``node.children``)."""
        self._parent = weakref.ref(node) if node is not None else None
        self._place()
        if self.children:  # moved with its subtree: their paths change too
            for n in self.walk():
                n._place()

    def _place(self) -> None:
        """Note the dotted path of a node without a tensor (a tensor's name is its entry's)."""
        up = self.parent
        if self.entry is not None:
            self._path = None
        elif up is None:
            self._path = ""
        else:
            above = up.full_name
            self._path = f"{above}.{self.name}" if above else self.name

    def __repr__(self) -> str:
        return f"Node({self.full_name!r}, {self.kind})"

    @property
    def is_tensor(self) -> bool:
        return self.entry is not None

    @property
    def full_name(self) -> str:
        if self.entry is not None:
            return self.entry.name
        return self._path

    def index_in_parent(self) -> int:
        """The row under the parent: cached, so that Qt's ``parent()`` on a parent with 10k
        children is not a scan per call (it made expanding a wide tree quadratic)."""
        if self.parent is None:
            return 0
        siblings = self.parent.children
        row = self._row
        if 0 <= row < len(siblings) and siblings[row] is self:
            return row
        for i, c in enumerate(siblings):
            c._row = i
        if 0 <= self._row < len(siblings) and siblings[self._row] is self:
            return self._row
        raise ValueError("node not in its parent")

    def child(self, name: str) -> "Node | None":
        for c in self.children:
            if c.name == name and c.entry is None:
                return c
        return None

    def walk(self) -> Iterator["Node"]:
        """This node and every node below it, depth first (iterative: trees may be deep)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def tensor_entries(self) -> list[TensorEntry]:
        return [n.entry for n in self.walk() if n.entry is not None]

    def find(self, full_name: str) -> "Node | None":
        for n in self.walk():
            if n.full_name == full_name:
                return n
        return None

    def totals(self) -> tuple[int, int]:
        """(elements, bytes) of the subtree, each tied storage counted once.

        Filled for every node below in one post-order pass, adding the children's sums; only a
        subtree holding tied tensors is counted over its unique entries (a walk per node
        re-read every tensor once per level: 2 s at 100k tensors)."""
        e = self.entry
        if e is not None:
            numel = prod(e.shape)
            return numel, numel * _element_size(e.dtype)
        if self._numel < 0:
            order, stack = [], [self]
            while stack:  # the nodes without a tensor that are not summed yet
                node = stack.pop()
                order.append(node)
                stack += [c for c in node.children if c.entry is None and c._numel < 0]
            for node in reversed(order):  # children before their parents
                node._fill_totals()
        return self._numel, self._nbytes

    def _fill_totals(self) -> None:
        numel = nbytes = 0
        tied = False
        for c in self.children:
            e = c.entry
            if e is None:
                numel += c._numel
                nbytes += c._nbytes
                tied = tied or c._tied
            else:
                n = prod(e.shape)
                numel += n
                nbytes += n * _element_size(e.dtype)
                tied = tied or bool(e.shared_with)
        if tied:
            uniq = unique_entries(self.tensor_entries())
            numel, nbytes = sum(u.numel for u in uniq), sum(u.nbytes for u in uniq)
        self._numel, self._nbytes, self._tied = numel, nbytes, tied

    def invalidate_totals(self) -> None:
        node: Node | None = self
        while node is not None:
            node._numel = -1
            node = node.parent


_NO_CHILDREN: tuple = ()  # a tensor's node never has children


def tree_from_names(entries: list[TensorEntry], extra_leaves: dict[str, str] | None = None,
                    container=None) -> Node:
    """Groups from dotted names (``a.b.weight`` -> a / b / weight), tensors in file order.

    ``extra_leaves`` are top-level entries without tensors (``epoch``, ``config``); with the
    loaded ``container``, every non-tensor value below the top level is an entry node where it
    sits (``optimizer`` / ``param_groups`` / ``0`` / ``lr``), under its group or top-level entry.
    """
    root = Node("", ROOT)
    by_prefix: dict[str, Node] = {}  # "a.b" -> the group a / b: one lookup per tensor

    def group(parts: list[str]) -> Node:
        return _group_at(by_prefix, root, ".".join(parts)) if parts else root

    get = by_prefix.get
    share = _one_copy()  # the few distinct names ("weight", "0") stored once, not per node
    for e in entries:
        name = e.name
        prefix, dot, leaf = name.rpartition(".")
        if not dot:
            parent = root
        else:
            # a known prefix has fewer than MAX_NAME_LEVELS levels: only a new one is counted
            parent = get(prefix)
            if parent is None:
                if name.count(".") < MAX_NAME_LEVELS:
                    parent = _group_at(by_prefix, root, prefix, share)
                else:
                    parts = _parts(name)
                    leaf, parent = parts[-1], group(parts[:-1])
        _placed(parent, share(leaf, leaf), e.kind, _tensor_type(e), e, _NO_CHILDREN, None)
    for key, summary in (extra_leaves or {}).items():
        by_prefix[key] = Node(key, ENTRY, "entry", root, summary=summary)
    if container is not None:
        from .nested import nested_entries
        for name, summary in nested_entries(container).items():
            parts = _parts(name)
            Node(parts[-1], ENTRY, "entry", group(parts[:-1]), summary=summary)
    return root


def _group_at(by_prefix: dict[str, Node], root: Node, prefix: str, share=None) -> Node:
    """The group node of ``prefix``, made with its missing ancestors. A module-level function:
    a closure calling itself is a reference cycle (through its cell) that kept ``by_prefix``,
    so the whole tree, alive until a full garbage collection."""
    node = by_prefix.get(prefix)
    if node is None:
        up, dot, name = prefix.rpartition(".")
        parent = _group_at(by_prefix, root, up, share) if dot else root
        if share is not None:
            name = share(name, name)
        node = by_prefix[prefix] = _placed(parent, name, GROUP, "", None, [], prefix)
    return node


def _placed(parent: Node, name: str, kind: str, type_name: str, entry: TensorEntry | None,
            children, path: str | None) -> Node:
    """A node as ``Node(...)`` makes it, without its general placing: the builder already knows
    the path (a group's is its prefix, the very string its lookup is keyed by) and that nothing
    is below. Once per tensor and group of a 100k-tensor file."""
    node = _new_node(Node)
    node.name, node.kind, node.type_name, node.entry, node.children = \
        name, kind, type_name, entry, children
    node._parent, node._path, node.summary, node.module = _weak(parent), path, "", None
    node._numel, node._nbytes, node._tied, node._row = -1, 0, False, -1
    parent.children.append(node)
    return node


_new_node, _weak = object.__new__, weakref.ref


def _one_copy():
    """``share(s, s)``: the first string equal to ``s`` met (a local table: ``sys.intern``
    refuses str subclasses)."""
    return {}.setdefault


def _parts(name: str) -> list[str]:
    """A dotted name's tree levels; past MAX_NAME_LEVELS the rest stays one node (a hostile key
    ``a.a.a...`` thousands of levels deep would make every walk of the tree quadratic)."""
    return name.split(".", MAX_NAME_LEVELS - 1)


def tree_from_module(module: torch.nn.Module, by_name: dict[str, TensorEntry]) -> Node:
    """Mirror ``named_children``: a shared submodule appears at every place it is used."""
    root = Node("", ROOT, _class_name(module))
    root.module = module
    _add_module(root, module, "", by_name, active=set())
    return root


def _add_module(node: Node, module, prefix: str, by_name, active: set[int]) -> None:
    if id(module) in active:  # a cycle: show the child but do not recurse forever
        return
    active.add(id(module))
    for name in _own_tensor_names(module):
        e = by_name.get(prefix + name)
        if e is not None:
            Node(name, e.kind, _tensor_type(e), node, entry=e)
    for child_name, child in _children(module):
        child_node = Node(child_name, MODULE, _class_name(child), node)
        child_node.module = child
        _add_module(child_node, child, f"{prefix}{child_name}.", by_name, active)
    active.discard(id(module))


def _children(module):
    """Like ``named_children`` but without its memo: a module used twice is listed twice."""
    return [(n, m) for n, m in module._modules.items() if m is not None]


def _own_tensor_names(module) -> list[str]:
    names = [n for n, p in module.named_parameters(recurse=False, remove_duplicate=False)
             if p is not None]
    names += [n for n, b in module.named_buffers(recurse=False, remove_duplicate=False)
              if b is not None]
    return names + [n for n, _t in _state_only_tensors(module, set(names))]


def _state_only_tensors(module, known: set[str]) -> list[tuple[str, torch.Tensor]]:
    """Tensors a module writes to its state_dict that are neither parameters nor buffers (the
    packed weights of ``torch.ao`` quantized modules). They are snapshots: shown, not edited."""
    save = getattr(type(module), "_save_to_state_dict", None)
    if (not isinstance(module, torch.nn.Module) or isinstance(module, torch.jit.ScriptModule)
            or save is None or save is torch.nn.Module._save_to_state_dict):
        return []
    state: dict = {}
    try:
        module._save_to_state_dict(state, "", keep_vars=True)
    except Exception:
        return []
    out = []
    for key, value in state.items():
        if key in known:
            continue
        items = [(key, value)] if isinstance(value, torch.Tensor) else \
            [(f"{key}.{i}", v) for i, v in enumerate(value)] if isinstance(value, (tuple, list)) else []
        for name, t in items:
            if isinstance(t, torch.Tensor):
                mark_snapshot(t)
                out.append((name, t))
    return out


def mark_snapshot(t: torch.Tensor) -> None:
    t._paramedit_snapshot = True


def module_entries(module: torch.nn.Module) -> list[TensorEntry]:
    """Every parameter and buffer under every name it is reachable by, in state_dict order."""
    out: list[TensorEntry] = []
    _collect(module, "", out, active=set())
    return out


def _collect(module, prefix: str, out: list[TensorEntry], active: set[int]) -> None:
    if id(module) in active:
        return
    active.add(id(module))
    start = len(out)  # this module's own entries: a set per module, never a scan of all
    for name, p in module.named_parameters(recurse=False, remove_duplicate=False):
        if p is not None:
            out.append(TensorEntry.of(prefix + name, p, PARAMETER, owner=module, attr=name))
    transient = getattr(module, "_non_persistent_buffers_set", ())
    for name, b in module.named_buffers(recurse=False, remove_duplicate=False):
        if b is not None:
            out.append(TensorEntry.of(prefix + name, b, BUFFER, owner=module, attr=name,
                                      persistent=name not in transient))
    known = {e.name[len(prefix):] for e in out[start:]}
    for name, t in _state_only_tensors(module, known):
        out.append(TensorEntry.of(prefix + name, t, TENSOR))
    for child_name, child in _children(module):
        _collect(child, f"{prefix}{child_name}.", out, active)
    active.discard(id(module))


def _class_name(module) -> str:
    name = getattr(module, "original_name", None)  # TorchScript keeps the Python class name here
    return name if isinstance(name, str) and name else type(module).__name__


_TYPE_NAMES = {"parameter": "Parameter", "buffer": "buffer"}


def _tensor_type(e: TensorEntry) -> str:
    if not e.persistent:
        return "buffer (non-persistent, not saved)"
    return _TYPE_NAMES.get(e.kind, "tensor")
