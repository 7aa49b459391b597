"""Save a document as a DCP folder, or a DCP document as one ``.pt`` with its non-tensor values.

A DCP folder is written whole with ``torch.distributed.checkpoint.save(..., no_dist=True)`` into
a hidden sibling folder, synced, then swapped in: one ``renameat2(RENAME_EXCHANGE)`` where the
system has it (the name always holds a complete checkpoint), else two renames; the old folder is
removed afterwards. A failure or a cancel leaves the target untouched and removes the sibling.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import secrets
import shutil
import warnings
from typing import Callable

import torch

from ..errors import Cancelled, UserError
from ..model.document import Document
from ..model.nested import path_name

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _entry_path(e) -> tuple:
    """Where the tensor goes in the saved state dict: its key path while it still spells its
    name (a renamed tensor goes to the top level under its new name)."""
    return e.path if e.path and path_name(e.path) == e.name else (e.name,)


def state_dict_of(doc: Document, progress=None, cancelled=None) -> dict:
    """The document as a nested state dict (key paths as in the DCP's planner data), every
    tensor read (unread lazy ones are not cached on their entries), non-tensor values included."""
    from .save import saved_entries
    from .safetensors_writer import read_for_save
    out: dict = {}
    entries = saved_entries(doc)
    read: dict[str, torch.Tensor] = {}
    total = max(sum(e.nbytes for e in entries), 1)
    done = 0
    for e in entries:
        if cancelled is not None and cancelled():
            raise Cancelled("save cancelled")
        t = read.get(e.name)
        if t is None:
            t = read_for_save(e)
            read.update({a: t for a in e.shared_with})
        _put(out, _entry_path(e), t.detach())
        done += e.nbytes
        if progress:
            progress(min(done, total), total)
    state = getattr(doc, "dcp", None)
    for name, value in (state.values.items() if state else ()):
        _put(out, state.paths.get(name, (name,)), value)
    return out


def _put(out: dict, path: tuple, value) -> None:
    d = out
    for k in path[:-1]:
        nxt = d.get(k)
        if not isinstance(nxt, dict):
            nxt = d[k] = {}
        d = nxt
    d[path[-1]] = value


def values_lost(doc: Document) -> list[str]:
    """A DCP document's non-tensor values, which safetensors cannot hold."""
    state = getattr(doc, "dcp", None)
    return list(state.values) if state else []


def write_torch_from_dcp(f, doc: Document) -> None:
    torch.save(state_dict_of(doc), f)


def write_dcp(doc: Document, out: str, progress: Callable | None = None,
              cancelled: Callable | None = None) -> str:
    """Write ``doc`` as the DCP folder ``out`` (replaced whole, atomically); returns ``out``."""
    import torch.distributed.checkpoint as dcp
    out = os.path.abspath(out)
    parent = os.path.dirname(out)
    if not os.path.isdir(parent):
        raise UserError(f"cannot save {out}: the folder {parent} does not exist")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"cannot save {out} as a DCP folder: a file has that name")
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(os.path.join(out, ".metadata")):
        raise UserError(f"cannot save {out} as a DCP folder: it is a folder that holds something "
                        "else than a DCP checkpoint")
    state = getattr(doc, "dcp", None)
    if state is not None:
        state.files.pin()  # unread tensors stay readable from the old files once replaced
    sd = state_dict_of(doc, progress, cancelled)
    tmp = os.path.join(parent, f".{os.path.basename(out)}.{secrets.token_hex(4)}.tmp")
    try:
        with warnings.catch_warnings():  # "torch.distributed is disabled ... single process"
            warnings.simplefilter("ignore", UserWarning)
            dcp.save(sd, storage_writer=_storage_writer(tmp, state), no_dist=True)
        if cancelled is not None and cancelled():
            raise Cancelled("save cancelled")
        for name in os.listdir(tmp):
            _fsync(os.path.join(tmp, name))
        _fsync(tmp)
        _swap_in(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise UserError(f"cannot save {out}: {exc.strerror or exc}") from None
        raise
    return out


def _storage_writer(folder: str, state):
    """torch's writer; a DCP read through stream transforms (zstd) is written through them again."""
    from torch.distributed.checkpoint import FileSystemWriter
    from .dcp_transforms import writer_extensions
    transforms = state.transforms if state is not None else ()
    if not transforms:
        return FileSystemWriter(folder)
    return FileSystemWriter(folder, _extensions=writer_extensions(transforms))


def _swap_in(tmp: str, out: str) -> None:
    """Put the folder ``tmp`` at ``out``; the old ``out`` (if any) is removed after."""
    if not os.path.exists(out):
        os.rename(tmp, out)
    elif _exchange(tmp, out):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old folder
    else:
        old = tmp + ".old"
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    _fsync(os.path.dirname(out))


def _exchange(a: str, b: str) -> bool:
    """Swap two paths in one step (Linux ``renameat2``); False where that is not available."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _fsync(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
