"""What is open: named tensors, their tree, non-tensor content, and where it came from."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

from ..errors import UserError
from .container_paths import (_insert_into_container, _pop_from_container, _rename_in_container,
                              _set_in_container)
from .document_events import DocumentEvents
from .file_backing import FileBacking
from .nested import named_tensors, top_level_entries
from .tensor_entry import PARAMETER, TensorEntry
from .ties import link_aliases, tie_group, unique_entries
from .tree import ENTRY, Node, module_entries, tree_from_module, tree_from_names


class Document(FileBacking):
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
        """A loaded checkpoint object: a state_dict, a training checkpoint, or a lone tensor."""
        if isinstance(obj, torch.nn.Module):
            return cls.from_module(obj, **kw)
        entries = [TensorEntry.of(n, t, path=p) for n, p, t in named_tensors(obj)]
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
            self.root = tree_from_names(list(self.tensors.values()), extra, self.container)
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

    # -- structural mutation (surgery; see surgery.py for the undoable Edits) ----------------
    # Live modules keep their own structure: their tensors can be cast, not renamed or removed.
    # Torch pickles keep ``container`` (the loaded object) in step, so saving writes it back.

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

    def _refuse_module(self, what: str) -> None:
        if self.module is not None:
            raise UserError(f"cannot {what} tensors of a live or TorchScript model; "
                            "save it as a checkpoint and open that to do so")

    def rename_tensors(self, mapping: dict[str, str]) -> None:
        """Rename several tensors at once (``{old: new}``), each keeping its position."""
        self._refuse_module("rename")
        for old in mapping:
            self.entry(old)
        final = [mapping.get(n, n) for n in self.tensors]
        if len(set(final)) != len(final):
            dup = sorted({n for n in final if final.count(n) > 1})
            raise UserError(f"renaming would give several tensors the same name: {', '.join(dup[:5])}")
        if self.container is not None:
            _rename_in_container(self.container, [(self.tensors[o], n) for o, n in mapping.items()])
        for old, new in mapping.items():
            self.tensors[old].name = new
        for e in self.tensors.values():
            e.shared_with = [mapping.get(n, n) for n in e.shared_with]
        self.tensors = {e.name: e for e in self.tensors.values()}
        self._changed()

    def rename_tensor(self, old: str, new: str) -> None:
        self.rename_tensors({old: new})

    def remove_tensor(self, name: str, _in_container: bool = True) -> dict:
        """Remove one tensor; returns a record that ``insert_tensor`` restores exactly."""
        self._refuse_module("remove")
        e = self.entry(name)
        record = {"entry": e, "position": list(self.tensors).index(name),
                  "shared_with": list(e.shared_with), "slot": None}
        if self.container is not None and _in_container:
            record["slot"] = _pop_from_container(self.container, e.path)
        del self.tensors[name]
        for other in e.shared_with:
            if other in self.tensors:
                self.tensors[other].shared_with.remove(name)
        self._changed()
        return record

    def insert_tensor(self, record: dict) -> None:
        """Undo ``remove_tensor``: same entry, position, container slot and ties."""
        self.insert_tensors([record])

    def insert_tensors(self, records: list[dict]) -> None:
        """Undo several ``remove_tensor`` calls, latest removal first, rebuilding the name
        table once (one insert at a time is quadratic: 480 optimizer tensors took 0.1 s)."""
        names = set(self.tensors)
        for rec in records:
            if rec["entry"].name in names:
                raise UserError(f"a tensor named {rec['entry'].name!r} already exists")
            names.add(rec["entry"].name)
        items = list(self.tensors.items())
        for rec in records:
            e: TensorEntry = rec["entry"]
            if rec["slot"] is not None:
                _insert_into_container(self.container, e.path, rec["slot"], rec["slot"][1])
            items.insert(rec["position"], (e.name, e))
        self.tensors = dict(items)
        for rec in records:
            e = rec["entry"]
            group = [e] + [self.tensors[n] for n in rec["shared_with"] if n in self.tensors]
            if len(group) > 1:
                tie_group(group)
        self._changed()

    def remove_entry(self, key: str) -> dict:
        """Remove a whole top-level key of a checkpoint (e.g. ``optimizer``), tensors included."""
        self._refuse_module("remove")
        if not isinstance(self.container, dict):
            raise UserError(f"{key!r}: only checkpoints whose top level is a dict have entries")
        real = next((k for k in self.container if str(k) == key), None)
        if real is None:
            raise UserError(f"the checkpoint has no top-level entry {key!r}")
        under = [n for n, e in self.tensors.items() if e.path[:1] == (real,)]
        with self.batch():
            removed = [self.remove_tensor(n, _in_container=False) for n in reversed(under)]
            slot = _pop_from_container(self.container, (real,))
            self._changed()
        return {"key": real, "slot": slot, "tensors": removed}

    def restore_entry(self, record: dict) -> None:
        """Undo ``remove_entry``."""
        key, (index, value) = record["key"], record["slot"]
        _insert_into_container(self.container, (key,), (index, value), value)
        with self.batch():
            self.insert_tensors(list(reversed(record["tensors"])))  # the container holds them
            self._changed()

    def replace_tensor(self, name: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
        """Put ``tensor`` (e.g. a cast copy) under ``name`` and all its aliases, so they stay tied.

        Returns ``{name: old tensor}`` for ``restore_tensors`` (exact originals, per alias).
        Live modules keep their ``Parameter`` objects: ``param.data`` is rebound (an optimizer
        holding the parameter still holds it); buffers are re-set under the same attribute.
        """
        e = self.entry(name)
        group = [e] + [self.tensors[n] for n in e.shared_with]
        old = {g.name: g.tensor() for g in group}
        params = {id(t): t for t in old.values() if isinstance(t, torch.nn.Parameter)}
        if params:
            data = tensor.data if isinstance(tensor, torch.nn.Parameter) else tensor
            old = {g.name: g.tensor().data for g in group}  # before any change: ties share p
            for g in group:
                p = g.tensor()
                if isinstance(p, torch.nn.Parameter):
                    p.data = data
                else:
                    self._put(g, data)
        else:
            for g in group:
                self._put(g, tensor)
        for g in group:
            g.refresh_meta()
        self.revision += 1
        return old

    def restore_tensors(self, old: dict[str, torch.Tensor]) -> None:
        """Undo ``replace_tensor``: each name gets back its own original tensor object."""
        for name, t in old.items():
            e = self.entry(name)
            cur = e.tensor()
            if isinstance(cur, torch.nn.Parameter) and not isinstance(t, torch.nn.Parameter):
                cur.data = t
                e.refresh_meta()
            else:
                self._put(e, t)
        self.revision += 1

    def _set_placeholder(self, e: TensorEntry, placeholder: torch.Tensor) -> None:
        if self.container is not None and e.path:
            try:
                _set_in_container(self.container, e.path, placeholder)
            except UserError:
                pass

    def _put(self, e: TensorEntry, tensor: torch.Tensor) -> None:
        if e.owner is not None and e.attr is not None:
            setattr(e.owner, e.attr, tensor)
        if self.container is not None and e.path:
            _set_in_container(self.container, e.path, tensor)
        e.set_tensor(tensor)

    # -- lifetime -----------------------------------------------------------------------------
    def close(self) -> None:
        """Release file handles (mmaps stay valid for tensors still referenced elsewhere)."""
        for close in self._closers:
            try:
                close()
            except Exception:
                pass
        self._closers.clear()
