"""What is open: named tensors, their tree, non-tensor content, and where it came from."""
from __future__ import annotations

from typing import Any, Callable

import torch

from .nested import iter_tensors, path_name, top_level_entries
from .tensor_entry import PARAMETER, TensorEntry
from .ties import link_aliases, unique_entries
from .tree import ENTRY, Node, module_entries, tree_from_module, tree_from_names


class Document:
    """An open checkpoint or live model.

    ``tensors`` maps full dotted names to entries in the file's own order. ``container`` is the
    loaded object itself (dicts, lists, entries besides tensors), kept so that saving loses
    nothing; ``module`` is set for live models and TorchScript. ``closers`` release file handles.
    """

    def __init__(self, tensors: list[TensorEntry], *, path: str | None = None, fmt: str = "torch",
                 container: Any = None, module: torch.nn.Module | None = None,
                 metadata: dict[str, str] | None = None, entries: dict[str, str] | None = None,
                 closers: list[Callable[[], None]] | None = None):
        self.path = path
        self.format = fmt
        self.tensors: dict[str, TensorEntry] = {e.name: e for e in tensors}
        self.container = container
        self.module = module
        self.metadata = dict(metadata or {})
        self.entries = dict(entries or {})
        self._closers = list(closers or [])
        #: set when a state_dict was loaded into model code: missing / unexpected / mismatched keys
        self.load_report: dict | None = None
        self.root: Node = self.build_tree()

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_object(cls, obj: Any, **kw) -> "Document":
        """A loaded checkpoint object: a state_dict, a training checkpoint, or a lone tensor."""
        if isinstance(obj, torch.nn.Module):
            return cls.from_module(obj, **kw)
        entries = [TensorEntry.of(path_name(p) or "tensor", t, path=p) for p, t in iter_tensors(obj)]
        link_aliases(entries)
        return cls(entries, container=obj, entries=top_level_entries(obj), **kw)

    @classmethod
    def from_module(cls, module: torch.nn.Module, **kw) -> "Document":
        """A live ``nn.Module`` (or ScriptModule): its own tensors, edited in place."""
        entries = module_entries(module)
        link_aliases(entries)
        kw.setdefault("fmt", "module")
        return cls(entries, module=module, **kw)

    def build_tree(self) -> Node:
        if self.module is not None:
            self.root = tree_from_module(self.module, self.tensors)
        else:
            extra = {k: v for k, v in self.entries.items() if not self._has_tensors_under(k)}
            self.root = tree_from_names(list(self.tensors.values()), extra)
        return self.root

    def _has_tensors_under(self, key: str) -> bool:
        prefix = key + "."
        return any(n == key or n.startswith(prefix) for n in self.tensors)

    # -- queries ------------------------------------------------------------------------------
    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def entry(self, name: str) -> TensorEntry:
        try:
            return self.tensors[name]
        except KeyError:
            raise KeyError(f"no tensor named {name!r}") from None

    def tensor(self, name: str) -> torch.Tensor:
        return self.entry(name).tensor()

    def names(self) -> list[str]:
        return list(self.tensors)

    def aliases(self, name: str) -> list[str]:
        """``name`` and every name tied to it."""
        return [name, *self.entry(name).shared_with]

    def unique_entries(self) -> list[TensorEntry]:
        return unique_entries(self.tensors.values())

    def total_numel(self) -> int:
        return sum(e.numel for e in self.unique_entries())

    def total_bytes(self) -> int:
        return sum(e.nbytes for e in self.unique_entries())

    def parameter_count(self) -> int:
        return sum(e.numel for e in self.unique_entries() if e.kind == PARAMETER)

    def node(self, full_name: str) -> Node | None:
        return self.root.find(full_name)

    def entry_nodes(self) -> list[Node]:
        return [n for n in self.root.children if n.kind == ENTRY]

    # -- lifetime -----------------------------------------------------------------------------
    def close(self) -> None:
        """Release file handles (mmaps stay valid for tensors still referenced elsewhere)."""
        for close in self._closers:
            try:
                close()
            except Exception:
                pass
        self._closers.clear()
