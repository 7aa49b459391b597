"""Legacy (non-zip) ``torch.save`` files opened lazily: their storages are mapped, not read.

A legacy file is five pickles and the storages' bytes: magic number, protocol, system info, the
checkpoint (storages referred to by key), the list of storage keys, then for each key in that
list an 8-byte element count and the raw bytes. ``torch.load`` reads every storage into memory
(the whole file); here the checkpoint pickle is unpickled twice with the same weights-only
unpickler ``torch.load`` would use: once on ``meta`` storages to learn each key's dtype and size,
which places every storage in the file, then with storages that view the file's mapping
(``MappedFile``: copy-on-write, never charged the file's size).
"""
from __future__ import annotations

import platform
import struct
from typing import Any, Callable

import torch

from .mapped_file import MappedFile

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
#: where a misaligned float (a storage right after an odd-length pickle) is read correctly
_UNALIGNED_OK = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


class NotLegacy(ValueError):
    """The file does not have the legacy layout this reader maps (the eager path decides)."""


def load_legacy_mapped(path: str, unpickler: Callable[..., Any]) -> tuple[Any, Callable[[], None]]:
    """The checkpoint object, its tensors viewing the file, and a function closing the file.

    ``unpickler(file)`` makes the restricted unpickler (torch's weights-only one, or ours); it
    is given ``persistent_load`` for storages, as ``torch.load`` does.
    """
    file = MappedFile(path)
    try:
        if not file.mapped:
            raise NotLegacy("the file cannot be mapped")
        with open(path, "rb") as f:
            for want in (MAGIC_NUMBER, PROTOCOL_VERSION):
                if unpickler(f).load() != want:
                    raise NotLegacy("no legacy torch.save header")
            unpickler(f).load()  # system info
            start = f.tell()
            sizes: dict[str, tuple[torch.dtype, int]] = {}
            _unpickle(f, unpickler, _Storages(sizes, None))
            keys = unpickler(f).load()
            places = _place(f, file, keys, sizes)
            f.seek(start)
            obj = _unpickle(f, unpickler, _Storages(sizes, lambda key: places[key]))
    except BaseException:
        file.close()
        raise
    return obj, file.close


def _unpickle(f, unpickler, storages: "_Storages") -> Any:
    u = unpickler(f)
    u.persistent_load = storages
    return u.load()


def _place(f, file: MappedFile, keys, sizes) -> dict[str, torch.UntypedStorage]:
    """Each key's storage, viewing its bytes in the file (checked against what the pickle says)."""
    if not isinstance(keys, list) or set(map(str, keys)) != set(sizes) or len(keys) != len(sizes):
        raise NotLegacy("the storage list does not match the checkpoint's storages")
    offset, places = f.tell(), {}
    for key in keys:
        dtype, numel = sizes[str(key)]
        head = _pread(file, offset, 8)
        (count,) = struct.unpack("<q", head)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if count != numel:
            raise NotLegacy(f"storage {key} holds {count} elements, the checkpoint says {numel}")
        nbytes = numel * itemsize
        begin = offset + 8
        if begin + nbytes > file.size:
            raise EOFError(f"storage {key} ends past the end of the file")
        if nbytes and begin % itemsize and not _UNALIGNED_OK:
            raise NotLegacy("misaligned storages on this machine")
        places[str(key)] = file.tensor(begin, nbytes, torch.uint8, (nbytes,)).untyped_storage()
        offset = begin + nbytes
    return places


def _pread(file: MappedFile, offset: int, n: int) -> bytes:
    if offset + n > file.size:
        raise EOFError("the file ends inside its storages")
    out = torch.empty(n, dtype=torch.uint8)
    file.read_into(offset, out.numpy())
    return out.numpy().tobytes()


class _Storages:
    """``persistent_load`` for legacy storage ids: ``meta`` storages while sizing (``place`` is
    None), views of the file after; a storage view (``view_metadata``) slices its root, as
    ``torch.load`` does."""

    def __init__(self, sizes: dict, place):
        self.sizes, self.place, self.made = sizes, place, {}

    def __call__(self, saved_id):
        if not isinstance(saved_id, tuple) or len(saved_id) != 6:
            raise NotLegacy("an unknown persistent id")
        typename, storage_type, root_key, _location, numel, view = saved_id
        typename = typename.decode("ascii") if isinstance(typename, bytes) else typename
        if typename != "storage":
            raise NotLegacy(f"persistent id {typename!r}")
        dtype = storage_type.dtype if not isinstance(storage_type, torch.dtype) else storage_type
        if not isinstance(dtype, torch.dtype) or not isinstance(numel, int) or numel < 0:
            raise NotLegacy("a storage of unknown type or size")
        key = str(root_key)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if self.place is None:
            if self.sizes.setdefault(key, (dtype, numel)) != (dtype, numel):
                raise NotLegacy(f"storage {key} is described twice, differently")
        root = self.made.get(key)
        if root is None:
            untyped = (torch.UntypedStorage(numel * itemsize, device="meta") if self.place is None
                       else self.place(key))
            root = self.made[key] = torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype,
                                                               _internal=True)
        if view is None:
            return root
        view_key, offset, size = view
        made = self.made.get(("view", str(view_key)))
        if made is None:
            if not (isinstance(offset, int) and isinstance(size, int) and 0 <= offset
                    and offset + size <= numel):
                raise NotLegacy("a storage view outside its storage")
            made = torch.storage.TypedStorage(
                wrap_storage=root._untyped_storage[offset * itemsize:(offset + size) * itemsize],
                dtype=dtype, _internal=True)
            self.made[("view", str(view_key))] = made
        return made
