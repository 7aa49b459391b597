"""What is open: named tensors, their tree, non-tensor content, and where it came from."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

from .document_events import DocumentEvents
from .document_surgery import TensorSurgery
from .file_backing import FileBacking
from .nested import named_tensors, top_level_entries
from .tensor_entry import PARAMETER, TensorEntry
from .ties import link_aliases, unique_entries
from .tree import ENTRY, Node, module_entries, tree_from_module, tree_from_names


class Document(TensorSurgery, FileBacking):
    """An open checkpoint or live model: named tensors, their tree, and everything else it holds.

    Build one with ``Document.from_object`` (a loaded checkpoint) or ``Document.from_module``
    (a live ``nn.Module``); the readers in ``core/formats`` build it lazily from files.

    Parameters
    ----------
    tensors : list of TensorEntry
        Every tensor under every name it is reachable by, in the file's own order.
    path : str, optional
        The file or folder it was read from (None for a live model).
    fmt : str
        The format name (``torch``, ``safetensors``, ``safetensors-sharded``, ``torchscript``,
        ``module``, ...).
    container : object, optional
        The loaded object itself (dicts, lists, non-tensor entries), kept so that saving loses
        nothing.
    module : torch.nn.Module, optional
        Set for live models and TorchScript archives; edits change its own tensors.
    metadata : dict of str to str, optional
        safetensors ``__metadata__``.
    entries : dict of str to str, optional
        Top-level non-tensor entries, summarised.
    closers : list of callables, optional
        Called by ``close()`` to release file handles and mappings.

    Attributes
    ----------
    tensors : dict of str to TensorEntry
        Full dotted names to entries, in order.
    root : Node
        The module tree (``named_children``) or the tree of dotted names.
    events : DocumentEvents
        Structural changes are announced here, once per change or once per ``batch()``.
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
        #: bumped by every structural change (rename, delete, insert, cast)
        self.revision = 0
        #: structural changes are announced here (once per batch)
        self.events = DocumentEvents()
        #: how many times a change was announced (tests count tree rebuilds with it)
        self.announcements = 0
        self._batch_depth = 0
        self._pending = False
        self.root: Node = self.build_tree()
        self._seed_totals()
        self._watch_files()

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_object(cls, obj: Any, **kw) -> "Document":
        """A loaded checkpoint object: a state_dict, a training checkpoint, or a lone tensor.

        Parameters
        ----------
        obj : object
            What ``torch.load`` returned (an ``nn.Module`` goes to ``from_module``).
        **kw
            Passed on to the constructor (``path``, ``fmt``, ...).

        Returns
        -------
        Document
        """
        if isinstance(obj, torch.nn.Module):
            return cls.from_module(obj, **kw)
        entries = [TensorEntry.of(n, t, path=p) for n, p, t in named_tensors(obj)]
        link_aliases(entries)
        return cls(entries, container=obj, entries=top_level_entries(obj), **kw)

    @classmethod
    def from_module(cls, module: torch.nn.Module, **kw) -> "Document":
        """A live ``nn.Module`` (or ScriptModule): its own tensors, edited in place.

        Parameters
        ----------
        module : torch.nn.Module
        **kw
            Passed on to the constructor; ``fmt`` defaults to ``"module"``.

        Returns
        -------
        Document
        """
        entries = module_entries(module)
        link_aliases(entries)
        kw.setdefault("fmt", "module")
        return cls(entries, module=module, **kw)

    def build_tree(self) -> Node:
        if self.module is not None:
            self.root = tree_from_module(self.module, self.tensors)
        else:
            extra = {k: v for k, v in self.entries.items() if not self._has_tensors_under(k)}
            self.root = tree_from_names(list(self.tensors.values()), extra, self.container)
        return self.root

    def _has_tensors_under(self, key: str) -> bool:
        prefix = key + "."
        return any(n == key or n.startswith(prefix) for n in self.tensors)

    # -- queries ------------------------------------------------------------------------------
    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def entry(self, name: str) -> TensorEntry:
        """The entry called ``name`` (any alias); raises KeyError naming it when there is none."""
        try:
            return self.tensors[name]
        except KeyError:
            raise KeyError(f"no tensor named {name!r}") from None

    def tensor(self, name: str) -> torch.Tensor:
        """The tensor called ``name``, read now if it is lazy (after the changed-file guard)."""
        e = self.entry(name)
        self.guard(e)
        return e.tensor()

    def names(self) -> list[str]:
        return list(self.tensors)

    def aliases(self, name: str) -> list[str]:
        """``name`` and every name tied to it."""
        return [name, *self.entry(name).shared_with]

    def unique_entries(self) -> list[TensorEntry]:
        return unique_entries(self.tensors.values())

    def total_numel(self) -> int:
        return self._totals()[0]

    def total_bytes(self) -> int:
        return self._totals()[1]

    def _seed_totals(self) -> None:
        """Sum the tree here (a reader's worker), not at the GUI thread's first paint; the tree
        of names holds every tensor once, so its root's totals are the document's."""
        totals = self.root.totals()
        if self.module is None:
            self._totals_cache = ((self.revision, id(self.root), len(self.tensors)), totals)

    def _totals(self) -> tuple[int, int]:
        """(elements, bytes), tied storage once; one pass per revision (the status bar asks for
        both at every open: two passes over 100k entries each)."""
        key = (self.revision, id(self.root), len(self.tensors))
        cached = getattr(self, "_totals_cache", None)
        if cached is None or cached[0] != key:
            uniq = self.unique_entries()
            cached = self._totals_cache = (key, (sum(e.numel for e in uniq),
                                                 sum(e.nbytes for e in uniq)))
        return cached[1]

    def parameter_count(self) -> int:
        return sum(e.numel for e in self.unique_entries() if e.kind == PARAMETER)

    def node(self, full_name: str) -> Node | None:
        return self.root.find(full_name)

    def entry_nodes(self) -> list[Node]:
        return [n for n in self.root.children if n.kind == ENTRY]

    # -- structural changes: batched and announced (the surgery itself: document_surgery.py;
    # the undoable Edits: edits/surgery.py) --------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator["Document"]:
        """Group structural changes: the tree is rebuilt and the change announced once, at the
        end of the outermost batch (deleting 800 tensors is one rebuild, not 800)."""
        self._batch_depth += 1
        try:
            yield self
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0 and self._pending:
                self._announce()

    def _changed(self) -> None:
        self.revision += 1
        if self._batch_depth:
            self._pending = True
        else:
            self._announce()

    def mark_changed(self) -> None:
        """A structural change made from outside (e.g. a cast): announce it (batched)."""
        self._changed()

    def _announce(self) -> None:
        self._pending = False
        if self.container is not None:
            self.entries = top_level_entries(self.container)
        self.build_tree()
        self.announcements += 1
        self.events.emit(self)

    # -- lifetime -----------------------------------------------------------------------------
    def close(self) -> None:
        """Release file handles (mmaps stay valid for tensors still referenced elsewhere)."""
        for close in self._closers:
            try:
                close()
            except Exception:
                pass
        self._closers.clear()
