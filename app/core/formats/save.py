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

import errno
import os
import re
import stat
import tempfile
from contextlib import contextmanager
from typing import Callable

try:
    import fcntl
except ImportError:  # Windows: no flock; leftovers are then left alone
    fcntl = None  # type: ignore[assignment]

from ..model.document import Document
from ..errors import Cancelled, UserError
from .safetensors_writer import write_safetensors
from .lost_entries import entries_lost_in_safetensors  # noqa: F401  (public here too)

TORCH, SAFETENSORS, SHARDED = "torch", "safetensors", "safetensors-sharded"
TORCHSCRIPT = "torchscript"
DCP = "dcp"  # torch.distributed.checkpoint folder (dcp_writer.py)
HF_FOLDER = "hf-folder"  # a Hugging Face folder's layout, config copied (hf_writer.py)
DEFAULT_SHARD_SIZE = 2 * 1024 ** 3
#: Tied tensors in safetensors: stored once, the other names recorded in metadata (what
#: ``safetensors.torch.save_model`` does; ``load_model`` and paramedit restore them), or every
#: name written as its own copy (a plain ``load_file`` + strict ``load_state_dict`` works).
TIED_ONCE, TIED_EVERY = "once", "every"


class WouldDropEntries(UserError):
    """Saving as safetensors would lose non-tensor entries; ask, then pass drop_non_tensor=True."""

    def __init__(self, keys: list[str]):
        self.keys = list(keys)
        super().__init__("safetensors holds only tensors; these entries would be lost: "
                         f"{', '.join(self.keys)} (save as .pt to keep them)")


def format_for(out_path: str, shard_size: int | None = None) -> str:
    from .dcp import is_dcp
    if is_dcp(out_path):
        return DCP
    if os.path.isdir(out_path) or out_path.endswith(".index.json"):
        return SHARDED
    if out_path.endswith(".safetensors"):
        return SAFETENSORS
    if shard_size and not os.path.splitext(out_path)[1]:
        return SHARDED  # a new folder
    return TORCH


def saved_entries(doc: Document) -> list:
    """The entries a save writes: all but a live module's non-persistent buffers."""
    return [e for e in doc.tensors.values() if e.persistent]


def has_ties(doc: Document) -> bool:
    return any(e.shared_with for e in saved_entries(doc))


def save_document(doc: Document, out_path: str, fmt: str | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  cancelled: Callable[[], bool] | None = None,
                  drop_non_tensor: bool = False, shard_size: int | None = None,
                  tied: str = TIED_ONCE) -> str:
    """Write ``doc`` to ``out_path``; returns the path written (the index file when sharded).

    Raises WouldDropEntries before writing anything when the format cannot hold the document's
    non-tensor entries, Cancelled when ``cancelled()`` turns true, UserError for other failures.
    ``tied`` (TIED_ONCE / TIED_EVERY) says how safetensors stores tied tensors. A TorchScript
    archive is written back as a TorchScript archive unless ``fmt`` asks for another format.
    """
    out_path = os.fspath(out_path)
    if tied not in (TIED_ONCE, TIED_EVERY):
        raise UserError(f"tied must be {TIED_ONCE!r} or {TIED_EVERY!r}, not {tied!r}")
    if fmt == HF_FOLDER or (fmt is None and getattr(doc, "hf", None) is not None
                            and not os.path.isfile(out_path) and not os.path.splitext(out_path)[1]):
        if getattr(doc, "hf", None) is None:
            raise UserError("only a document opened from a Hugging Face folder saves as one")
        from .hf_writer import save_hf_folder
        return save_hf_folder(doc, out_path, progress=progress, cancelled=cancelled,
                              drop_non_tensor=drop_non_tensor, tied=tied)
    if fmt is None:
        fmt = format_for(out_path, shard_size)
        if fmt == TORCH and doc.format == TORCHSCRIPT:
            fmt = TORCHSCRIPT  # an archive stays an archive unless a state_dict is asked for
        if fmt == TORCH and doc.format == DCP and not os.path.splitext(out_path)[1]:
            fmt = DCP  # a DCP folder stays a folder unless a file suffix asks for one file
    if fmt in (SAFETENSORS, SHARDED) and not drop_non_tensor:
        from .dcp_writer import values_lost
        lost = entries_lost_in_safetensors(doc) + values_lost(doc)
        if lost:
            raise WouldDropEntries(lost)
    total = doc.total_bytes()
    if fmt == SHARDED:
        from .sharded_writer import write_sharded
        written, metadata = write_sharded(doc, out_path, shard_size or DEFAULT_SHARD_SIZE,
                                          Stager(total, progress, cancelled), tied=tied)
    elif fmt == SAFETENSORS:
        entries = saved_entries(doc)
        if tied == TIED_EVERY:
            write = lambda f: write_safetensors(f, entries, doc.metadata,  # noqa: E731
                                                [e.name for e in entries], {})
        else:
            write = lambda f: write_safetensors(f, entries, doc.metadata)  # noqa: E731
        atomic_write(out_path, write, total, progress, cancelled)
        written, metadata = out_path, doc.metadata
    elif fmt == TORCHSCRIPT:
        from .torchscript_writer import write_torchscript
        atomic_write(out_path, lambda f: write_torchscript(f, doc), total, progress, cancelled)
        written, metadata = out_path, {}
    elif fmt == DCP:
        from .dcp_writer import write_dcp
        written, metadata = write_dcp(doc, out_path, progress, cancelled), {}
    elif fmt == TORCH and getattr(doc, "dcp", None) is not None:
        from .dcp_writer import write_torch_from_dcp  # the step counter and such go along
        atomic_write(out_path, lambda f: write_torch_from_dcp(f, doc), total, progress, cancelled)
        written, metadata = out_path, {}
    elif fmt == TORCH:
        from .torch_writer import write_torch
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

    Live models have no path; torch-sharded folders would be rewritten as safetensors shards,
    which is not what Save should silently do. A TorchScript archive read lazily is written back
    into the archive (only its tensors' records change).
    """
    if doc.format == TORCHSCRIPT:
        from .torchscript_writer import can_write_back
        return bool(doc.path) and can_write_back(doc)
    return bool(doc.path) and doc.module is None and doc.format in (TORCH, SAFETENSORS, SHARDED, DCP)


def reopen(doc: Document) -> Document:
    """A fresh Document of the file ``doc`` was saved to; closes ``doc``."""
    from . import load_document
    new = load_document(doc.path)
    doc.close()
    return new


#: Test hook: called with a step name at every point where a crash leaves the disk in a new
#: state (a temporary created / written / synced, a rename, a removal). The kill tests set it.
STEP_HOOK: Callable[[str], None] | None = None

TEMP_RE = re.compile(r"^\.(?P<base>.+)\.[A-Za-z0-9_]{8}\.tmp$")  # what tempfile.mkstemp names


def step(name: str) -> None:
    if STEP_HOOK is not None:
        STEP_HOOK(name)


def _cannot_save(path: str | None, exc: OSError) -> UserError:
    """One line for an OSError of a save: a full disk said in words, not as a torch RuntimeError."""
    why = "No space left on device" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
    return UserError(f"cannot save {path}: {why}" if path else f"cannot save: {why}")


class _Progress:
    """A file wrapper that reports bytes written (over every file of one save) and stops when
    cancelled. It remembers an OSError of the real file: torch's zip writer turns it into a
    RuntimeError whose text says nothing a user can act on."""

    def __init__(self, total: int, progress, cancelled):
        self._f, self._total, self._progress, self._cancelled = None, max(total, 1), progress, cancelled
        self.done = 0
        self.was_cancelled = False
        self.error: OSError | None = None

    def attach(self, f) -> "_Progress":
        self._f = f
        return self

    def write(self, data) -> int:
        if self.was_cancelled or (self._cancelled is not None and self._cancelled()):
            self.was_cancelled = True
            raise Cancelled("save cancelled")
        try:
            n = self._f.write(data)
        except OSError as exc:
            self.error = exc
            raise
        self.done += len(memoryview(data).cast("B")) if not isinstance(data, (bytes, bytearray)) else len(data)
        if self._progress is not None:
            self._progress(min(self.done, self._total), self._total)
        return n

    def copied(self, n: int) -> None:
        """``n`` bytes were copied into the file beside ``write`` (``stream_copy``): the same
        progress and cancel as for bytes written."""
        if self.was_cancelled or (self._cancelled is not None and self._cancelled()):
            self.was_cancelled = True
            raise Cancelled("save cancelled")
        self.done += n
        if self._progress is not None:
            self._progress(min(self.done, self._total), self._total)

    def flush(self) -> None:
        try:
            self._f.flush()
        except OSError as exc:
            self.error = exc
            raise

    def __getattr__(self, name):  # tell/seek/fileno for torch's zip writer
        return getattr(self._f, name)


class Stager:
    """Atomic saves of one or several files: ``stage`` writes each beside its target (flushed,
    invisible), ``commit`` fsyncs them all, then ``os.replace``s each and fsyncs the folders.

    Each temporary stays open and ``flock``ed until it is renamed or removed, so a later save can
    tell the leftovers of a killed save (unlocked) from a save in progress (locked) and remove
    only the former. Any failure removes the temporaries; targets are only ever replaced whole.
    """

    def __init__(self, total: int = 0, progress=None, cancelled=None):
        self.wrapper = _Progress(total, progress, cancelled)
        self.staged: list[tuple[str, str, object]] = []  # (temporary, target, open file)

    def stage(self, path: str, write: Callable) -> None:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise UserError(f"cannot save {path}: the folder {folder} does not exist")
        base = os.path.basename(path)
        remove_leftovers(folder, lambda b: b == base)
        try:
            fd, tmp = tempfile.mkstemp(prefix="." + base + ".", suffix=".tmp", dir=folder)
        except OSError as exc:
            raise _cannot_save(path, exc) from None
        f = os.fdopen(fd, "wb")
        _lock(f.fileno())
        self.staged.append((tmp, path, f))
        step(f"created {tmp}")
        with self._discarded_on_failure(path):
            try:
                write(self.wrapper.attach(f))
                f.flush()
            except Exception:
                if self.wrapper.was_cancelled:  # torch's zip writer may mask it with its own
                    raise Cancelled("save cancelled") from None
                if self.wrapper.error is not None:
                    raise self.wrapper.error from None
                raise
            step(f"written {tmp}")

    def commit(self) -> None:
        with self._discarded_on_failure(None):
            for tmp, _path, f in self.staged:
                os.fsync(f.fileno())
                step(f"synced {tmp}")
            while self.staged:
                tmp, path, f = self.staged[0]
                if os.path.exists(path):
                    try:
                        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
                    except OSError:
                        pass
                else:
                    os.chmod(tmp, 0o666 & ~_umask())
                os.replace(tmp, path)
                self.staged.pop(0)
                _close(f)
                # each rename durable before the next: an index never lands before its shards
                _fsync_dir(os.path.dirname(os.path.abspath(path)))
                step(f"renamed {path}")

    @contextmanager
    def _discarded_on_failure(self, path: str | None):
        """Any failure removes every temporary; an OSError becomes one line for the user."""
        try:
            yield
        except BaseException as exc:
            self.discard()
            if isinstance(exc, OSError):
                raise _cannot_save(path, exc) from None
            raise

    def discard(self) -> None:
        for tmp, _path, f in self.staged:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            _close(f)
        self.staged.clear()


def atomic_write(path: str, write: Callable, total: int = 0, progress=None, cancelled=None) -> None:
    """``write(file)`` into a temporary beside ``path``, fsync, then ``os.replace``."""
    stager = Stager(total, progress, cancelled)
    stager.stage(path, write)
    stager.commit()


def remove_leftovers(folder: str, wanted: Callable[[str], bool]) -> list[str]:
    """Remove the temporaries (``.NAME.xxxxxxxx.tmp``) that killed saves of ``NAME`` left in
    ``folder``, for every NAME ``wanted`` accepts. A temporary a live save holds is locked and
    kept. Returns the names removed."""
    if fcntl is None:  # no way to tell a live save's temporary from a dead one's
        return []
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = TEMP_RE.match(name)
        if m is None or not wanted(m.group("base")):
            continue
        full = os.path.join(folder, name)
        try:
            fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a save in progress holds it
            os.unlink(full)
            removed.append(name)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _lock(fd: int) -> None:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pass


def _close(f) -> None:
    try:
        f.close()
    except OSError:
        pass


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
