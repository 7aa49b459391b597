"""torch.distributed.checkpoint (DCP) folders: ``.metadata`` plus ``__N_M.distcp`` files.

Opened with no process group and nothing read but the metadata: every tensor is listed with its
global shape and dtype. A tensor is assembled on demand from its chunks (the pieces each rank
saved), reading only those byte ranges; each chunk is a ``torch.save`` record read with
``weights_only=True``. Non-tensor values (a step counter) are small records read at open, also
weights-only, and kept so that saving back (DCP or ``.pt``) loses nothing.
"""
from __future__ import annotations

import io
import os
import threading

import torch

from ..errors import ContentError
from ..model.document import Document
from ..model.file_stamps import FileChangedError, stamp
from ..model.tensor_entry import TensorEntry
from .dcp_metadata import METADATA_NAME, BytesMeta, DcpMetadata, TensorMeta, read_metadata
from .dcp_transforms import RECORD_SLACK, decode, extensions

DCP = "dcp"
#: a non-tensor value larger than this is not read at open (a step counter is a few hundred bytes)
MAX_VALUE_BYTES = 16 * 1024 * 1024
#: up to this many storage files (ranks) are opened at once when the folder is opened
PIN_AT_OPEN = 256


def is_dcp(path: str) -> bool:
    """A folder holding ``.metadata`` and at least one ``.distcp`` file, or one of those files."""
    folder = dcp_folder(path)
    if folder is None:
        return False
    try:
        return any(n.endswith(".distcp") for n in os.listdir(folder))
    except OSError:
        return False


def dcp_folder(path: str) -> str | None:
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, METADATA_NAME)):
        return path
    name = os.path.basename(path)
    if (name == METADATA_NAME or name.endswith(".distcp")) and os.path.isfile(path):
        folder = os.path.dirname(os.path.abspath(path))  # one of its files: the whole folder
        return folder if os.path.isfile(os.path.join(folder, METADATA_NAME)) else None
    return None


class DcpFiles:
    """The storage files of one DCP folder, opened on first use and kept open.

    Kept open so that a save replacing the folder (``pin()`` first) leaves unread tensors
    readable from the old, unlinked files, as a replaced safetensors file stays mapped. Each
    file is stamped when the folder is opened: one opened later (past ``PIN_AT_OPEN``) that is
    no longer that file (replaced, rewritten) is refused, never read as if it were.
    """

    def __init__(self, folder: str, names):
        self.folder = folder
        self.names = sorted(set(names))
        self._stamps = {n: stamp(os.path.join(folder, n)) for n in self.names}
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()

    def read(self, name: str, offset: int, length: int) -> bytes:
        data = os.pread(self._open(name), length, offset)
        if len(data) != length:
            raise ContentError(f"{name} is truncated: {length} bytes at {offset} were expected")
        return data

    def pin(self) -> None:
        """Open every file now (before the folder is replaced)."""
        for name in self.names:
            self._open(name)

    def _open(self, name: str) -> int:
        with self._lock:
            fd = self._fds.get(name)
            if fd is None:
                fd = os.open(os.path.join(self.folder, name), os.O_RDONLY)
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != self._stamps.get(name):
                    os.close(fd)
                    raise FileChangedError(f"{name} changed on disk since {self.folder} was "
                                           "opened; reload the folder")
                self._fds[name] = fd
            return fd

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._fds.clear()


def _load_record(data: bytes, what: str):
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        text = str(exc).strip().splitlines()
        raise ContentError(f"{what} cannot be read weights-only "
                           f"({text[0][:200] if text else type(exc).__name__})") from None


def read_tensor(files: DcpFiles, meta: TensorMeta) -> torch.Tensor:
    """The whole tensor, assembled from its chunks (only its own byte ranges are read)."""
    if len(meta.chunks) == 1 and meta.chunks[0].sizes == meta.shape:  # saved whole: no copy
        return _read_chunk(files, meta, meta.chunks[0])
    out = torch.empty(meta.shape, dtype=meta.dtype)
    for c in meta.chunks:
        out[tuple(slice(o, o + s) for o, s in zip(c.offsets, c.sizes))] = _read_chunk(files, meta, c)
    return out


def _stored(files: DcpFiles, where, what: str, limit: int) -> bytes:
    """The bytes of a record, decoded through its transforms (at most ``limit`` bytes)."""
    data = files.read(where.file, where.offset, where.length)
    if not where.transforms:
        return data
    return decode(data, extensions(what, where.transforms), limit, what)


def _read_chunk(files: DcpFiles, meta: TensorMeta, c) -> torch.Tensor:
    numel = 1
    for s in c.sizes:
        numel *= s
    limit = numel * torch.empty((), dtype=meta.dtype).element_size() + RECORD_SLACK
    what = f"{meta.name} (a chunk)"
    piece = _load_record(_stored(files, c, what, limit), what)
    if not isinstance(piece, torch.Tensor) or tuple(piece.shape) != c.sizes:
        raise ContentError(f"{meta.name}: a chunk holds something else than the "
                           f"{list(c.sizes)} piece its metadata announces")
    if piece.dtype != meta.dtype:
        raise ContentError(f"{meta.name}: a chunk is {piece.dtype}, not {meta.dtype}")
    return piece


def read_value(files: DcpFiles, meta: BytesMeta):
    if meta.length > MAX_VALUE_BYTES:
        raise ContentError(f"the value {meta.name!r} takes {meta.length} bytes, more than a "
                           f"non-tensor entry may ({MAX_VALUE_BYTES // 2**20} MiB)")
    what = f"the value {meta.name!r}"
    return _load_record(_stored(files, meta, what, MAX_VALUE_BYTES), what)


def summarise(value) -> str:
    from ..model.nested import summarize
    return summarize(value)


def load_dcp(path: str, progress=None) -> Document:
    """A lazy Document of the DCP folder at ``path`` (or its ``.metadata``)."""
    folder = dcp_folder(path)
    meta: DcpMetadata = read_metadata(folder)
    names = {c.file for t in meta.tensors.values() for c in t.chunks}
    names |= {v.file for v in meta.values.values()}
    files = DcpFiles(folder, names)
    try:
        if len(files.names) <= PIN_AT_OPEN:  # later reads see the files as they were at open,
            files.pin()                      # even if a training job replaces them meanwhile
        values = {n: read_value(files, v) for n, v in meta.values.items()}
    except BaseException:
        files.close()
        raise
    entries = []
    for name in meta.order:
        t = meta.tensors.get(name)
        if t is not None:
            entries.append(TensorEntry.lazy(name, t.shape, t.dtype,
                                            lambda t=t: read_tensor(files, t), path=meta.paths[name]))
    doc = Document(entries, path=folder, fmt=DCP, entries={n: summarise(v) for n, v in values.items()},
                   closers=[files.close])
    #: what saving needs beyond the tensors: the non-tensor values, their key paths, the files
    doc.dcp = DcpState(files, values, {n: meta.paths[n] for n in meta.values}, meta.transforms)
    if progress:
        progress(1, 1)
    return doc


class DcpState:
    """Kept on a DCP document as ``doc.dcp``: its files, its non-tensor values by name, and the
    stream transforms its entries were stored through (a save back writes them again)."""

    def __init__(self, files: DcpFiles, values: dict, paths: dict[str, tuple],
                 transforms: tuple[str, ...] = ()):
        self.files = files
        self.values = values
        self.paths = paths
        self.transforms = transforms
