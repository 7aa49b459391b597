"""The tree shown to the user: modules from ``named_children``, or groups from dotted names."""
from __future__ import annotations

from typing import Iterator

import torch

from .tensor_entry import BUFFER, PARAMETER, TensorEntry
from .ties import unique_entries

ROOT, MODULE, GROUP, ENTRY = "root", "module", "group", "entry"
TENSOR_KINDS = ("parameter", "buffer", "tensor")


class Node:
    """A pure tree node. ``kind`` is root/module/group/entry or a tensor kind."""

    __slots__ = ("name", "kind", "type_name", "parent", "children", "entry", "summary",
                 "_totals", "module", "__weakref__")

    def __init__(self, name: str, kind: str, type_name: str = "", parent: "Node | None" = None,
                 entry: TensorEntry | None = None, summary: str = ""):
        self.name = name
        self.kind = kind
        self.type_name = type_name
        self.parent = parent
        self.children: list[Node] = []
        self.entry = entry
        self.summary = summary
        self._totals: tuple[int, int] | None = None
        self.module = None  # the nn.Module of a live model's module node
        if parent is not None:
            parent.children.append(self)

    def __repr__(self) -> str:
        return f"Node({self.full_name!r}, {self.kind})"

    @property
    def is_tensor(self) -> bool:
        return self.entry is not None

    @property
    def full_name(self) -> str:
        if self.entry is not None:
            return self.entry.name
        parts = []
        node: Node | None = self
        while node is not None and node.parent is not None:
            parts.append(node.name)
            node = node.parent
        return ".".join(reversed(parts))

    def index_in_parent(self) -> int:
        if self.parent is None:
            return 0
        for i, c in enumerate(self.parent.children):
            if c is self:
                return i
        raise ValueError("node not in its parent")

    def child(self, name: str) -> "Node | None":
        for c in self.children:
            if c.name == name and c.entry is None:
                return c
        return None

    def walk(self) -> Iterator["Node"]:
        yield self
        for c in self.children:
            yield from c.walk()

    def tensor_entries(self) -> list[TensorEntry]:
        return [n.entry for n in self.walk() if n.entry is not None]

    def find(self, full_name: str) -> "Node | None":
        for n in self.walk():
            if n.full_name == full_name:
                return n
        return None

    def totals(self) -> tuple[int, int]:
        """(elements, bytes) of the subtree, each tied storage counted once."""
        if self._totals is None:
            uniq = unique_entries(self.tensor_entries())
            self._totals = (sum(e.numel for e in uniq), sum(e.nbytes for e in uniq))
        return self._totals

    def invalidate_totals(self) -> None:
        node: Node | None = self
        while node is not None:
            node._totals = None
            node = node.parent


def tree_from_names(entries: list[TensorEntry], extra_leaves: dict[str, str] | None = None) -> Node:
    """Groups from dotted names (``a.b.weight`` -> a / b / weight), tensors in file order."""
    root = Node("", ROOT)
    groups: dict[tuple[int, str], Node] = {}
    for e in entries:
        parts = e.name.split(".")
        node = root
        for p in parts[:-1]:
            key = (id(node), p)
            if key not in groups:
                groups[key] = Node(p, GROUP, "", node)
            node = groups[key]
        Node(parts[-1], e.kind, _tensor_type(e.kind), node, entry=e)
    for key, summary in (extra_leaves or {}).items():
        Node(key, ENTRY, "entry", root, summary=summary)
    return root


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
            Node(name, e.kind, _tensor_type(e.kind), node, entry=e)
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
    return names


def module_entries(module: torch.nn.Module) -> list[TensorEntry]:
    """Every parameter and buffer under every name it is reachable by, in state_dict order."""
    out: list[TensorEntry] = []
    _collect(module, "", out, active=set())
    return out


def _collect(module, prefix: str, out: list[TensorEntry], active: set[int]) -> None:
    if id(module) in active:
        return
    active.add(id(module))
    for name, p in module.named_parameters(recurse=False, remove_duplicate=False):
        if p is not None:
            out.append(TensorEntry.of(prefix + name, p, PARAMETER, owner=module, attr=name))
    for name, b in module.named_buffers(recurse=False, remove_duplicate=False):
        if b is not None:
            out.append(TensorEntry.of(prefix + name, b, BUFFER, owner=module, attr=name))
    for child_name, child in _children(module):
        _collect(child, f"{prefix}{child_name}.", out, active)
    active.discard(id(module))


def _class_name(module) -> str:
    name = getattr(module, "original_name", None)  # TorchScript keeps the Python class name here
    return name if isinstance(name, str) and name else type(module).__name__


def _tensor_type(kind: str) -> str:
    return {"parameter": "Parameter", "buffer": "buffer"}.get(kind, "tensor")
