"""Save a Document atomically, in torch zip, safetensors or sharded safetensors, losing nothing.

``save_document(doc, out)`` writes beside ``out`` (temporary name in the same folder), flushes
and fsyncs, then ``os.replace``s. Any failure (a writer raising, a cancel) leaves the old file
intact and removes the temporary. Saving over the open, memory-mapped file is safe: the old
mapping keeps the old inode alive and readable until the document is closed.

After a successful save the document is **updated in place** (same object, same entries, so
undo stacks and views stay valid): ``doc.path``, ``doc.format`` and ``doc.metadata`` describe
the new file. Lazy entries not yet read still read the old (unlinked) file, which holds the same
bytes. ``reopen(doc)`` gives a fresh Document of the new file when one is preferred.
"""
from __future__ import annotations

import os
import tempfile
from typing import Callable

from .document import Document
from .errors import Cancelled, UserError
from .formats.safetensors_writer import write_safetensors

TORCH, SAFETENSORS, SHARDED = "torch", "safetensors", "safetensors-sharded"
DEFAULT_SHARD_SIZE = 2 * 1024 ** 3


class WouldDropEntries(UserError):
    """Saving as safetensors would lose non-tensor entries; ask, then pass drop_non_tensor=True."""

    def __init__(self, keys: list[str]):
        self.keys = list(keys)
        super().__init__("safetensors holds only tensors; these entries would be lost: "
                         f"{', '.join(self.keys)} (save as .pt to keep them)")


def format_for(out_path: str, shard_size: int | None = None) -> str:
    if os.path.isdir(out_path) or out_path.endswith(".index.json"):
        return SHARDED
    if out_path.endswith(".safetensors"):
        return SAFETENSORS
    if shard_size and not os.path.splitext(out_path)[1]:
        return SHARDED  # a new folder
    return TORCH


def entries_lost_in_safetensors(doc: Document) -> list[str]:
    """Top-level entries that safetensors cannot hold (empty for a live model or a state_dict)."""
    return [] if doc.module is not None else list(doc.entries)


def save_document(doc: Document, out_path: str, fmt: str | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  cancelled: Callable[[], bool] | None = None,
                  drop_non_tensor: bool = False, shard_size: int | None = None) -> str:
    """Write ``doc`` to ``out_path``; returns the path written (the index file when sharded).

    Raises WouldDropEntries before writing anything when the format cannot hold the document's
    non-tensor entries, Cancelled when ``cancelled()`` turns true, UserError for other failures.
    """
    out_path = os.fspath(out_path)
    fmt = fmt or format_for(out_path, shard_size)
    if fmt in (SAFETENSORS, SHARDED) and not drop_non_tensor:
        lost = entries_lost_in_safetensors(doc)
        if lost:
            raise WouldDropEntries(lost)
    total = doc.total_bytes()
    if fmt == SHARDED:
        from .formats.sharded_writer import write_sharded
        written, metadata = write_sharded(doc, out_path, shard_size or DEFAULT_SHARD_SIZE,
                                          Stager(total, progress, cancelled))
    elif fmt == SAFETENSORS:
        atomic_write(out_path, lambda f: write_safetensors(f, list(doc.tensors.values()),
                                                           doc.metadata), total, progress, cancelled)
        written, metadata = out_path, doc.metadata
    elif fmt == TORCH:
        from .formats.torch_writer import write_torch
        atomic_write(out_path, lambda f: write_torch(f, doc), total, progress, cancelled)
        written, metadata = out_path, {}
    else:
        raise UserError(f"unknown save format {fmt!r}")
    if doc.module is None:
        doc.path, doc.format = written, fmt
        doc.metadata = dict(metadata)
    return written


def can_save_in_place(doc: Document) -> bool:
    """Whether plain Save may write ``doc.path`` in the format it was read in (else: Save As).

    Live models have no path; TorchScript archives and torch-sharded folders would be rewritten
    as a state_dict / safetensors shards, which is not what Save should silently do.
    """
    return bool(doc.path) and doc.module is None and doc.format in (TORCH, SAFETENSORS, SHARDED)


def reopen(doc: Document) -> Document:
    """A fresh Document of the file ``doc`` was saved to; closes ``doc``."""
    from .formats import load_document
    new = load_document(doc.path)
    doc.close()
    return new


class _Progress:
    """A file wrapper that reports bytes written (over every file of one save) and stops when
    cancelled."""

    def __init__(self, total: int, progress, cancelled):
        self._f, self._total, self._progress, self._cancelled = None, max(total, 1), progress, cancelled
        self.done = 0
        self.was_cancelled = False

    def attach(self, f) -> "_Progress":
        self._f = f
        return self

    def write(self, data) -> int:
        if self.was_cancelled or (self._cancelled is not None and self._cancelled()):
            self.was_cancelled = True
            raise Cancelled("save cancelled")
        n = self._f.write(data)
        self.done += len(memoryview(data).cast("B")) if not isinstance(data, (bytes, bytearray)) else len(data)
        if self._progress is not None:
            self._progress(min(self.done, self._total), self._total)
        return n

    def flush(self) -> None:
        self._f.flush()

    def __getattr__(self, name):  # tell/seek/fileno for torch's zip writer
        return getattr(self._f, name)


class Stager:
    """Atomic saves of one or several files: ``stage`` writes each beside its target (flushed,
    invisible), ``commit`` fsyncs them all, then ``os.replace``s each and fsyncs the folders.

    Syncing at the end rather than after each file lets the kernel write one file back while
    the next is being written (shards of a large checkpoint). Any failure removes the
    temporaries; targets are only ever replaced whole."""

    def __init__(self, total: int = 0, progress=None, cancelled=None):
        self.wrapper = _Progress(total, progress, cancelled)
        self.staged: list[tuple[str, str]] = []

    def stage(self, path: str, write: Callable) -> None:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise UserError(f"cannot save {path}: the folder {folder} does not exist")
        try:
            fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                                       dir=folder)
        except OSError as exc:
            raise UserError(f"cannot save {path}: {exc.strerror or exc}") from None
        self.staged.append((tmp, path))
        try:
            with os.fdopen(fd, "wb") as f:
                try:
                    write(self.wrapper.attach(f))
                except Exception:
                    if self.wrapper.was_cancelled:  # torch's zip writer may mask it with its own
                        raise Cancelled("save cancelled") from None
                    raise
                f.flush()
        except BaseException as exc:
            self.discard()
            if isinstance(exc, OSError):
                raise UserError(f"cannot save {path}: {exc.strerror or exc}") from None
            raise

    def commit(self) -> None:
        try:
            for tmp, _path in self.staged:
                _fsync(tmp)
            while self.staged:
                tmp, path = self.staged[0]
                if os.path.exists(path):
                    try:
                        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
                    except OSError:
                        pass
                else:
                    os.chmod(tmp, 0o666 & ~_umask())
                os.replace(tmp, path)
                self.staged.pop(0)
                # each rename durable before the next: an index never lands before its shards
                _fsync_dir(os.path.dirname(os.path.abspath(path)))
        except BaseException as exc:
            self.discard()
            if isinstance(exc, OSError):
                raise UserError(f"cannot save: {exc.strerror or exc}") from None
            raise

    def discard(self) -> None:
        for tmp, _path in self.staged:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        self.staged.clear()


def atomic_write(path: str, write: Callable, total: int = 0, progress=None, cancelled=None) -> None:
    """``write(file)`` into a temporary beside ``path``, fsync, then ``os.replace``."""
    stager = Stager(total, progress, cancelled)
    stager.stage(path, write)
    stager.commit()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: str) -> None:
    """Make a rename in ``folder`` durable; a file system that cannot sync folders is fine."""
    try:
        _fsync(folder)
    except OSError:
        pass
