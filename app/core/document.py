"""What is open: named tensors, their tree, non-tensor content, and where it came from."""
from __future__ import annotations

import os
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

import torch

from .errors import UserError
from .file_stamps import FileChangedError, FileStamps, in_ranges, mapped_ranges, source_files
from .nested import get_at, iter_tensors, path_name, top_level_entries
from .tensor_entry import PARAMETER, TensorEntry
from .ties import link_aliases, tie_group, unique_entries
from .tree import ENTRY, Node, module_entries, tree_from_module, tree_from_names


class DocumentEvents:
    """Callbacks told about structural changes (renames, removals, insertions, casts): once per
    change, or once at the end of a ``Document.batch()``. Qt-free: the window connects its
    tree model here."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[["Document"], None]] = []

    def connect(self, callback: Callable[["Document"], None]) -> None:
        if callback not in self._callbacks:
            self._callbacks.append(callback)

    def disconnect(self, callback: Callable[["Document"], None]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, doc: "Document") -> None:
        for callback in list(self._callbacks):
            callback(doc)


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
        #: bumped by every structural change (rename, delete, insert, cast)
        self.revision = 0
        #: structural changes are announced here (once per batch)
        self.events = DocumentEvents()
        #: how many times a change was announced (tests count tree rebuilds with it)
        self.announcements = 0
        self._batch_depth = 0
        self._pending = False
        self.root: Node = self.build_tree()
        self._watch_files()

    # -- the files underneath -----------------------------------------------------------------
    def _watch_files(self) -> None:
        """Stamp the files read from, and guard lazy reads: nothing is read from a changed file."""
        self.files = FileStamps(source_files(self.path))
        #: set by ``detach_from_files``: the document no longer reads its files at all
        self.detached = False
        self._lost: weakref.WeakSet[TensorEntry] = weakref.WeakSet()
        # Without /proc/self/maps: what was loaded at open is what the file backs.
        self._open_ptrs = {e.tensor().untyped_storage().data_ptr()
                           for e in self.tensors.values() if e.is_loaded} if self.files.paths else set()
        ref = weakref.ref(self)
        for e in self.tensors.values():
            if e._loader is not None:
                e._loader = _guarded_loader(ref, e, e._loader)

    @property
    def unavailable(self) -> set[str]:
        """Names whose values were lost with a changed file (never read, or still file-backed)."""
        return {e.name for e in self._lost if self.tensors.get(e.name) is e}

    def files_changed(self) -> list[str]:
        """The document's files that changed on disk since they were opened (empty once
        detached: nothing is read from them any more)."""
        return [] if self.detached else self.files.changed()

    def _at_risk(self) -> bool:
        return self.detached or bool(self.files_changed())

    def _mapped_ranges(self):
        return mapped_ranges(self.files.inodes())

    def file_backed(self, tensor: torch.Tensor, ranges=None) -> bool:
        """Whether ``tensor``'s memory is still a mapping of one of the document's files."""
        if not self.files.paths or tensor.device.type == "meta":
            return False
        ptr = tensor.untyped_storage().data_ptr()
        ranges = self._mapped_ranges() if ranges is None else ranges
        return in_ranges(ptr, ranges) if ranges is not None else ptr in self._open_ptrs

    def _refuse_changed(self, name: str, lost: bool = False) -> None:
        if lost or name in self.unavailable:
            raise FileChangedError(f"{name}: its values were never read before the file changed "
                                   "on disk, so they are unavailable; reload the file to see it")
        changed = self.files_changed()
        where = ", ".join(changed[:3]) if changed else (self.path or "the file")
        raise FileChangedError(f"{where} changed on disk since it was opened; {name} is not read "
                               "from it (reload the file, or keep working from what was read)")

    def guard(self, entry: TensorEntry) -> None:
        """Raise FileChangedError instead of touching file data that may have changed (a
        truncated mapping kills the process with SIGBUS)."""
        if entry in self._lost:
            self._refuse_changed(entry.name)
        if not self.files.paths or not self._at_risk():
            return
        if not entry.is_loaded or self.file_backed(entry.tensor()):
            self._refuse_changed(entry.name)

    def check_files(self) -> None:
        """Before a save (or anything that reads every tensor): refuse while a file changed on
        disk, or while tensors are unavailable because one did."""
        if self.files_changed():
            self._refuse_changed("nothing")
        if self.unavailable:
            names = sorted(self.unavailable)
            raise FileChangedError(
                f"{len(names)} tensor{'s' if len(names) != 1 else ''} ({', '.join(names[:3])}"
                f"{', ...' if len(names) > 3 else ''}) were lost when the file changed on disk; "
                "delete them or reload the file")

    def read_private(self, entries: Iterable[TensorEntry], cancelled=None) -> list[torch.Tensor]:
        """Read ``entries`` into private memory (copies of what the file maps), so that what was
        read and edited survives the file being rewritten. Refuses when the file changed."""
        from .errors import Cancelled
        entries = list(entries)
        out = []
        for e in entries:
            if cancelled is not None and cancelled():
                raise Cancelled()
            self.guard(e)
            out.append(e.tensor())
        self.privatize(entries)
        return out

    def is_private(self, entries: Iterable[TensorEntry]) -> bool:
        """Whether every entry is read and none is still backed by the document's files."""
        entries = list(entries)
        if not all(e.is_loaded for e in entries):
            return False
        if not self.files.paths:
            return True
        ranges = self._mapped_ranges()
        return not any(self.file_backed(e.tensor(), ranges) for e in entries)

    def privatize(self, entries: Iterable[TensorEntry]) -> int:
        """Move the file-backed storages of ``entries`` (and of every tensor sharing them) to
        private memory, in place: each tensor object stays the same. Returns bytes copied."""
        if not self.files.paths:
            return 0
        ranges = self._mapped_ranges()
        storages = {}
        for e in entries:
            if e.is_loaded and self.file_backed(e.tensor(), ranges):
                s = e.tensor().untyped_storage()
                storages.setdefault(s.data_ptr(), s)
        if not storages:
            return 0
        if self._at_risk():
            self._refuse_changed(next(iter(entries)).name)
        copies = {ptr: s.clone() for ptr, s in storages.items()}
        with torch.no_grad():
            for e in self.tensors.values():
                if not e.is_loaded:
                    continue
                t = e.tensor()
                new = copies.get(t.untyped_storage().data_ptr())
                if new is not None:
                    t.set_(new, t.storage_offset(), t.shape, t.stride())
        return sum(s.nbytes() for s in copies.values())

    def detach_from_files(self) -> list[str]:
        """Keep working from private memory after a file changed: tensors read into private
        memory (or edited, cast, ...) stay; the others become unavailable (reading one raises
        FileChangedError, the container holds a ``meta`` placeholder). Returns those names."""
        ranges = self._mapped_ranges()
        lost = [n for n, e in self.tensors.items()
                if not e.is_loaded or self.file_backed(e.tensor(), ranges)]
        ref = weakref.ref(self)
        for n in lost:
            e = self.tensors[n]
            placeholder = torch.empty(e.shape, dtype=e.dtype, device="meta")
            if self.container is not None and e.path:
                try:
                    _set_in_container(self.container, e.path, placeholder)
                except UserError:
                    pass
            e._tensor, e._loader = None, _guarded_loader(ref, e, _never)
            self._lost.add(e)
        self.detached = True
        return lost

    def restamp(self, written: str) -> None:
        """After a save to ``written``: when that replaced the document's own file, watch what is
        there now (the data read stays mapped from the replaced file, which nothing can change
        any more). A save elsewhere changes nothing: the data still maps the old file."""
        if os.path.abspath(written) in self.files.stamps:
            self.files = FileStamps(source_files(written))

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
        return sum(e.numel for e in self.unique_entries())

    def total_bytes(self) -> int:
        return sum(e.nbytes for e in self.unique_entries())

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
        e: TensorEntry = record["entry"]
        if e.name in self.tensors:
            raise UserError(f"a tensor named {e.name!r} already exists")
        if record["slot"] is not None:
            _insert_into_container(self.container, e.path, record["slot"], record["slot"][1])
        items = list(self.tensors.items())
        items.insert(record["position"], (e.name, e))
        self.tensors = dict(items)
        group = [e] + [self.tensors[n] for n in record["shared_with"] if n in self.tensors]
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
            for rec in reversed(record["tensors"]):  # ascending positions; container holds them
                self.insert_tensor(rec)
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


def _never() -> torch.Tensor:
    raise AssertionError("unreachable: the guard refuses first")


def _guarded_loader(ref, entry: TensorEntry, loader: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """A lazy entry's loader that first checks the document's files (weak references: no cycle)."""
    entry_ref = weakref.ref(entry)

    def load() -> torch.Tensor:
        doc, e = ref(), entry_ref()
        if doc is not None and e is not None:
            if e in doc._lost:
                doc._refuse_changed(e.name, lost=True)
            if doc.files.paths and doc._at_risk():
                doc._refuse_changed(e.name)
        return loader()
    return load


# -- container helpers: the nested dicts / lists of a torch pickle ---------------------------

def _parent(container: Any, path: tuple) -> Any:
    if not path:
        raise UserError("the checkpoint is a lone tensor; it has no name to change")
    return get_at(container, path[:-1])


def _set_in_container(container: Any, path: tuple, value: Any) -> None:
    parent = _parent(container, path)
    if isinstance(parent, tuple):
        raise UserError(f"{path_name(path)} sits in a tuple, which cannot be changed")
    parent[path[-1]] = value


def _pop_from_container(container: Any, path: tuple) -> tuple[int, Any]:
    parent = _parent(container, path)
    if not isinstance(parent, dict):
        raise UserError(f"{path_name(path)} is an item of a list; only dict entries can be removed")
    index = list(parent).index(path[-1])
    return index, parent.pop(path[-1])


def _insert_into_container(container: Any, path: tuple, slot: tuple[int, Any], value: Any) -> None:
    parent = _parent(container, path)
    items = list(parent.items())
    items.insert(slot[0], (path[-1], value))
    parent.clear()  # same dict object: an OrderedDict keeps its ``_metadata``
    parent.update(items)


def _new_path(container: Any, old_path: tuple, new_name: str) -> tuple:
    """The deepest dict on ``old_path`` whose dotted name prefixes ``new_name`` gets the rest."""
    for cut in range(len(old_path) - 1, -1, -1):
        parent_path = old_path[:cut]
        prefix = path_name(parent_path)
        if prefix and not new_name.startswith(prefix + "."):
            continue
        rest = new_name[len(prefix) + 1:] if prefix else new_name
        if rest and isinstance(get_at(container, parent_path), dict):
            return parent_path + (rest,)
    raise UserError(f"cannot place a tensor named {new_name!r} in this checkpoint")


def _rename_in_container(container: Any, moves: list[tuple[TensorEntry, str]]) -> None:
    """Move tensors to the keys of their new names; a key renamed within its dict keeps its place."""
    if not moves:
        return
    plans = [(e, e.path, _new_path(container, e.path, new)) for e, new in moves]
    by_parent: dict[int, tuple[dict, dict]] = {}
    for e, old, new in plans:
        parent = get_at(container, old[:-1])
        if not isinstance(parent, dict):
            raise UserError(f"{e.name} is an item of a list; it cannot be renamed")
        if new[:-1] == old[:-1]:
            by_parent.setdefault(id(parent), (parent, {}))[1][old[-1]] = new[-1]
    moved = [(e, old, new) for e, old, new in plans if new[:-1] != old[:-1]]
    for parent, keys in by_parent.values():
        items = [(keys.get(k, k), v) for k, v in parent.items()]
        if len({k for k, _ in items}) != len(items):
            raise UserError("renaming would give two entries of one dict the same key")
    for e, _old, new in moved:
        if new[-1] in get_at(container, new[:-1]):
            raise UserError(f"renaming {e.name} would overwrite the entry {path_name(new)}")
    for parent, keys in by_parent.values():
        items = [(keys.get(k, k), v) for k, v in parent.items()]
        parent.clear()
        parent.update(items)
    for e, old, new in moved:
        value = get_at(container, old[:-1]).pop(old[-1])
        target = get_at(container, new[:-1])
        if new[-1] in target:
            raise UserError(f"renaming {e.name} would overwrite the entry {path_name(new)}")
        target[new[-1]] = value
    for e, _old, new in plans:
        e.path = new
