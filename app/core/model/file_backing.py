"""The part of a Document that reads files: stamps checked before every read, private copies of
what was read, and working on without the files once they changed on disk (see file_stamps)."""
from __future__ import annotations

import os
import threading
import weakref
from typing import Callable, Iterable

import torch

from ..errors import Cancelled
from ..gil_pacer import Pacer
from . import file_lease
from .file_stamps import FileChangedError, FileStamps, in_ranges, mapped_ranges, source_files
from .tensor_entry import TensorEntry


class FileBacking:
    """Mixed into Document: needs ``path``, ``module``, ``tensors`` and ``_set_placeholder``."""

    path: str | None
    module: object
    tensors: dict[str, TensorEntry]

    # -- the files underneath -----------------------------------------------------------------
    def _watch_files(self) -> None:
        """Stamp the files read from, and guard lazy reads: nothing is read from a changed file."""
        self.files = FileStamps(source_files(self.path))
        #: set by ``detach_from_files``: the document no longer reads its files at all
        self.detached = False
        #: a file was rewritten in place while open: what it still maps is not to be read
        self._damaged = False
        self._lost: weakref.WeakSet[TensorEntry] = weakref.WeakSet()
        #: private copies made only to be shown: {copy's address: (file storage, tensors'
        #: versions)}; released (the tensors view the file again) once no longer read, if unedited
        self._shown_copies: dict[int, tuple[torch.UntypedStorage, list]] = {}
        #: {storage address: the entry viewing it, or a list of those sharing it}
        self._by_storage: dict[int, TensorEntry | list[TensorEntry]] = {}
        self._unindexed: list[TensorEntry] = []
        self._index_key: tuple | None = None
        if self.files.paths:
            self._index_storages()
        # Without /proc/self/maps: what a checkpoint had loaded at open is what the file backs
        # (a model's own tensors never are: a state_dict was copied into them).
        self._open_ptrs = set(self._by_storage) if self.files.paths and self.module is None \
            else set()
        ref = weakref.ref(self)
        guard = _FileGuard(ref)  # one per document
        for e in self.tensors.values():
            loader = e._loader
            if loader is None:
                continue
            if hasattr(type(loader), "guard") and getattr(loader, "guard", 0) is None:
                loader.guard, loader.name = guard, e.name  # a loader that checks by itself
            else:
                e._loader = _guarded_loader(ref, e.name, loader)

    @property
    def unavailable(self) -> set[str]:
        """Names whose values were lost with a changed file (never read, or still file-backed)."""
        return {e.name for e in self._lost if self.tensors.get(e.name) is e}

    def files_changed(self) -> list[str]:
        """The document's files that changed on disk since they were opened, in any way (empty
        once detached: the user chose to go on without them)."""
        return [] if self.detached else self.files.changed()

    def _at_risk(self) -> bool:
        """Whether data still mapped from the files may have changed under us."""
        return self._damaged or bool(self.files.rewritten())

    def _mapped_ranges(self):
        return mapped_ranges(self.files.inodes())

    def file_backed(self, tensor: torch.Tensor, ranges=None) -> bool:
        """Whether ``tensor``'s memory is still a mapping of one of the document's files."""
        ptr = _storage_ptr(tensor) if self.files.paths else None
        if ptr is None:
            return False
        ranges = self._mapped_ranges() if ranges is None else ranges
        return in_ranges(ptr, ranges) if ranges is not None else ptr in self._open_ptrs

    def _refuse_changed(self, name: str, lost: bool = False) -> None:
        if lost or name in self.unavailable:
            raise FileChangedError(f"{name}: its values were never read before the file changed "
                                   "on disk, so they are unavailable; reload the file to see it")
        changed = self.files.rewritten() or self.files_changed()
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
        """Before a save (or anything that reads every tensor): refuse while a file was rewritten
        on disk, or while tensors are unavailable because one was."""
        if not self.detached and self.files.rewritten():
            self._refuse_changed("nothing")
        if self.unavailable:
            names = sorted(self.unavailable)
            raise FileChangedError(
                f"{len(names)} tensor{'s' if len(names) != 1 else ''} ({', '.join(names[:3])}"
                f"{', ...' if len(names) > 3 else ''}) were lost when the file changed on disk; "
                "delete them or reload the file")

    def read_private(self, entries: Iterable[TensorEntry], cancelled=None) -> list[torch.Tensor]:
        """Read ``entries`` into private memory (copies of what the file maps), so that what was
        read and edited survives the file being rewritten. Refuses when the file changed.

        The copies made by an earlier call for other entries are released when their tensors
        were not changed since (``release_shown``): what was only looked at costs no memory.
        """
        entries = list(entries)
        out = []
        with file_lease.reading():  # a rewrite of the file waits for the copy (on any thread)
            for e in entries:
                if cancelled is not None and cancelled():
                    raise Cancelled()
                self.guard(e)
                out.append(e.tensor())
            if threading.current_thread() is threading.main_thread():
                # never under a tensor the GUI thread may be reading: workers only add copies
                self.release_shown(keep=entries)
            # a tensor too big to copy is shown from the file (the guard still checks it first)
            self.privatize([e for e in entries if e.nbytes <= copy_limit()], shown=True)
        return out

    def release_shown(self, keep: Iterable[TensorEntry] = ()) -> int:
        """Let tensors copied only to be shown view their file again, unless they were changed
        in place since (their version counters moved: an edit, an undo), are among ``keep``, or
        the file changed on disk. Each tensor object stays the same. Returns bytes released."""
        if not self._shown_copies:
            return 0
        keep_ptrs = {_storage_ptr(e.tensor()) for e in keep if e.is_loaded}
        at_risk = self._at_risk()
        released = 0
        for ptr, (original, versions) in list(self._shown_copies.items()):
            if ptr in keep_ptrs:
                continue
            del self._shown_copies[ptr]
            sharing = self._sharing(ptr)
            now = sorted({(id(t), t._version) for _e, t in sharing})
            if at_risk or not sharing or now != versions:
                continue  # edited (or gone, or the file is not to be read): the copy stays
            with torch.no_grad():
                for t in {id(t): t for _e, t in sharing}.values():
                    t.set_(original, t.storage_offset(), t.shape, t.stride())
            self._by_storage[original.data_ptr()] = [e for e, _t in sharing]
            released += original.nbytes()
        return released

    # -- which tensors view a storage ---------------------------------------------------------
    def _index_storages(self) -> None:
        """Index the loaded entries by the address of their storage, in one pass (at open, in
        the loading worker); kept for the document's revision (a structural edit rebuilds it).
        Moving a storage to private memory and back then looks only at the tensors sharing it,
        not at every tensor of the document (0.4 s at 100k). Entries not read yet are indexed
        once they are (``_unindexed``)."""
        index: dict[int, TensorEntry | list[TensorEntry]] = {}
        unindexed = []
        pace = Pacer()
        for e in self.tensors.values():
            pace()
            if not e.is_loaded:
                unindexed.append(e)
                continue
            ptr = _storage_ptr(e.tensor())
            if ptr is not None:
                _add(index, ptr, e)
        self._by_storage, self._unindexed = index, unindexed
        self._index_key = (self.revision, len(self.tensors))

    @property
    def sharing_indexed(self) -> bool:
        """Whether finding the tensors that share a storage needs no pass over the document
        (the index is current; entries read lazily since cost a check each)."""
        return not self.files.paths or self._index_key == (self.revision, len(self.tensors))

    def _sharing(self, ptr: int) -> list[tuple[TensorEntry, torch.Tensor]]:
        """``(entry, tensor)`` of every loaded entry whose tensor's storage lives at ``ptr``."""
        if self._index_key != (self.revision, len(self.tensors)):
            self._index_storages()
        elif self._unindexed:
            waiting = []
            for e in self._unindexed:
                if not e.is_loaded:
                    waiting.append(e)
                elif (at := _storage_ptr(e.tensor())) is not None:
                    _add(self._by_storage, at, e)
            self._unindexed = waiting
        out = []
        found = self._by_storage.get(ptr)
        if found is None:
            return out
        for e in found if isinstance(found, list) else (found,):
            if e.is_loaded and self.tensors.get(e.name) is e:
                t = e.tensor()
                if _storage_ptr(t) == ptr:
                    out.append((e, t))
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

    def privatize(self, entries: Iterable[TensorEntry], shown: bool = False) -> int:
        """Move the file-backed storages of ``entries`` (and of every tensor sharing them) to
        private memory, in place: each tensor object stays the same. Returns bytes copied.
        ``shown``: the copies are only to be shown, and may be released (``release_shown``)."""
        if not self.files.paths:
            return 0
        entries = list(entries)
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
        moved: dict[int, list[torch.Tensor]] = {}
        with torch.no_grad():
            for ptr, new in copies.items():
                sharing = self._sharing(ptr)
                tensors = list({id(t): t for _e, t in sharing}.values())
                for t in tensors:
                    t.set_(new, t.storage_offset(), t.shape, t.stride())
                moved[new.data_ptr()] = tensors
                self._by_storage[new.data_ptr()] = [e for e, _t in sharing]
        if shown:
            for ptr, s in storages.items():
                new_ptr = copies[ptr].data_ptr()
                self._shown_copies[new_ptr] = (s, sorted({(id(t), t._version)
                                                          for t in moved.get(new_ptr, [])}))
        return sum(s.nbytes() for s in copies.values())

    def detach_from_files(self) -> list[str]:
        """Keep working from private memory after a file changed: tensors read into private
        memory (or edited, cast, ...) stay; the others become unavailable (reading one raises
        FileChangedError, the container holds a ``meta`` placeholder). Returns those names.
        Files that were only replaced (renamed over) or deleted lose nothing: what they map is
        still the file that was opened."""
        self._damaged = self._damaged or bool(self.files.rewritten())
        ranges = self._mapped_ranges()
        lost = [n for n, e in self.tensors.items()
                if self._damaged and (not e.is_loaded or self.file_backed(e.tensor(), ranges))]
        ref = weakref.ref(self)
        for n in lost:
            e = self.tensors[n]
            placeholder = torch.empty(e.shape, dtype=e.dtype, device="meta")
            self._set_placeholder(e, placeholder)
            e._tensor, e._loader = None, _lost_loader(ref, e)
            self._lost.add(e)
        self.detached = True
        return lost

    def restamp(self, written: str) -> None:
        """After a save to ``written``: when that replaced the document's own file, watch what is
        there now (the data read stays mapped from the replaced file, which nothing can change
        any more). A save elsewhere changes nothing: the data still maps the old file."""
        if set(source_files(written)) & set(self.files.stamps):  # its file, or a folder's
            self.files = FileStamps(source_files(written))


def copy_limit() -> int:
    """The largest tensor ``read_private`` copies: a quarter of the machine's memory (a
    checkpoint may hold one tensor larger than all of it)."""
    global _COPY_LIMIT
    if _COPY_LIMIT is None:
        try:
            _COPY_LIMIT = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
        except (AttributeError, ValueError, OSError):
            _COPY_LIMIT = 4 * 1024 ** 3
    return _COPY_LIMIT


_COPY_LIMIT: int | None = None


def _lost_loader(ref, entry: TensorEntry) -> Callable[[], torch.Tensor]:
    """The loader of an entry whose values were lost with a changed file: it always refuses."""
    entry_ref = weakref.ref(entry)

    def load() -> torch.Tensor:
        doc, e = ref(), entry_ref()
        if doc is not None and e is not None:
            doc._refuse_changed(e.name, lost=e in doc._lost)
        raise FileChangedError("the file changed on disk since it was opened; reload it")

    return load


def _guarded_loader(ref, name: str, loader: Callable[[], torch.Tensor]) -> "_Guarded":
    """A lazy entry's loader that first checks the document's files (a weak reference: no
    cycle). One small object per entry (a checkpoint may hold 100k); it keeps the ``source`` of
    the loader it wraps (a save copying the bytes file to file checks the file first too)."""
    cls = _GuardedSource if getattr(loader, "source", None) is not None else _Guarded
    return cls(ref, name, loader)


class _FileGuard:
    """``guard(name)``: refuses to read ``name`` from the document's files once they changed."""

    __slots__ = ("doc",)

    def __init__(self, doc: "weakref.ref"):
        self.doc = doc

    def __call__(self, name: str) -> None:
        doc = self.doc()
        if doc is not None and doc.files.paths and doc._at_risk():
            doc._refuse_changed(name)


class _Guarded:
    __slots__ = ("doc", "name", "loader")

    def __init__(self, doc: "weakref.ref", name: str, loader: Callable[[], torch.Tensor]):
        self.doc, self.name, self.loader = doc, name, loader

    def check(self) -> None:
        doc = self.doc()
        if doc is not None and doc.files.paths and doc._at_risk():
            doc._refuse_changed(self.name)

    def __call__(self) -> torch.Tensor:
        self.check()
        return self.loader()


class _GuardedSource(_Guarded):
    __slots__ = ()

    def source(self):
        self.check()
        return self.loader.source()


def _add(index: dict, ptr: int, e: TensorEntry) -> None:
    """Index ``e`` under ``ptr``: most storages have one tensor, kept without a list (100k
    lists cost more than the pass itself)."""
    there = index.get(ptr)
    if there is None:
        index[ptr] = e
    elif isinstance(there, list):
        there.append(e)
    else:
        index[ptr] = [there, e]


def _storage_ptr(t: torch.Tensor) -> int | None:
    """Where a strided tensor's storage lives; None for what has no storage of its own (meta,
    sparse layouts: their parts are separate tensors) and so is never moved to private memory."""
    if t.device.type == "meta" or t.layout != torch.strided:
        return None
    try:
        return t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        return None
