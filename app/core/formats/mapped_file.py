"""Tensors read straight from byte ranges of a file: mapped copy-on-write, or read when mapping fails.

A checkpoint may be larger than the machine's memory. ``safe_open`` maps the whole file private
and writable, which the kernel's overcommit heuristic refuses outright for a file larger than
memory. Here the file is mapped once with ``MAP_PRIVATE | MAP_NORESERVE``: a private writable
mapping that is not charged against the commit limit. Pages are read from the file on first
touch and become private memory only when written (an edit in place), so the memory a document
uses is what was touched, never the file's size. Where the system refuses the mapping anyway
(strict overcommit, no mmap), each tensor's bytes are read with ``os.pread`` into fresh memory.
"""
from __future__ import annotations

import mmap
import os
import sys
import warnings
import weakref

import numpy as np
import torch

#: not named by Python 3.11's mmap module; the Linux value
MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000 if sys.platform.startswith("linux") else 0)
_CHUNK = 64 * 1024 * 1024


class RangeLoader:
    """A lazy entry's loader reading one byte range of a MappedFile; ``source`` says which, so a
    save can copy the unchanged bytes file to file (``stream_copy``) instead of reading them.

    One per tensor (a checkpoint may hold 100k): slotted, and checked by the document's
    ``guard(name)`` (set by ``FileBacking``) rather than wrapped in a second object.
    """

    __slots__ = ("file", "offset", "nbytes", "dtype", "shape", "guard", "name")

    def __init__(self, file: "MappedFile", offset: int, nbytes: int, dtype: torch.dtype, shape):
        self.file, self.offset, self.nbytes = file, offset, nbytes
        self.dtype, self.shape = dtype, tuple(shape)
        self.guard, self.name = None, ""

    def __call__(self) -> torch.Tensor:
        if self.guard is not None:
            self.guard(self.name)
        return self.file.tensor(self.offset, self.nbytes, self.dtype, self.shape)

    def source(self) -> tuple[int, int, int] | None:
        """``(descriptor, offset, nbytes)`` to copy from; None once the file is closed."""
        if self.guard is not None:
            self.guard(self.name)
        fd = self.file.fileno()
        return None if fd < 0 else (fd, self.offset, self.nbytes)


class MappedFile:
    """One open checkpoint file handing out tensors that view (or copy) its byte ranges.

    Parameters
    ----------
    path : str
        The file; it stays open (one descriptor, one mapping) until ``close``.
    map : bool
        False reads every tensor with ``os.pread`` (the fallback, also used by tests).

    Notes
    -----
    Tensors handed out keep the mapping alive after ``close``: it is unmapped when the last one
    is freed. Writing to one changes only this process's copy of the touched pages.
    """

    def __init__(self, path: str, map: bool = True):
        self.path = path
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self._closer = weakref.finalize(self, os.close, self._fd)  # a document never closed
        self.size = os.fstat(self._fd).st_size
        self._map: mmap.mmap | None = None
        if map and self.size:
            self._map = _map_copy_on_write(self._fd)

    @property
    def mapped(self) -> bool:
        return self._map is not None

    def tensor(self, offset: int, nbytes: int, dtype: torch.dtype, shape) -> torch.Tensor:
        """The ``nbytes`` at ``offset`` as a tensor of ``dtype`` and ``shape`` (checked by the
        caller to lie inside the file and to match)."""
        shape = tuple(shape)
        if nbytes == 0:
            return torch.empty(shape, dtype=dtype)
        if self._fd < 0:
            raise ValueError(f"{self.path} is closed")
        itemsize = torch.empty((), dtype=dtype).element_size()
        if self._map is not None and offset % itemsize == 0:
            raw = np.frombuffer(self._map, dtype=np.uint8, count=nbytes, offset=offset)
            with warnings.catch_warnings():  # it is writable: a private mapping
                warnings.simplefilter("ignore")
                flat = torch.from_numpy(raw)
        else:
            flat = torch.empty(nbytes, dtype=torch.uint8)
            self.read_into(offset, flat.numpy())
        return flat.view(dtype).reshape(shape)

    def read_into(self, offset: int, out: np.ndarray) -> None:
        """Fill the uint8 array ``out`` from ``offset`` with ``os.pread`` (no mapping)."""
        view = memoryview(out).cast("B")
        done = 0
        while done < len(view):
            part = view[done:done + _CHUNK]
            if hasattr(os, "preadv"):
                n = os.preadv(self._fd, [part], offset + done)
            else:  # Windows: no positional reads
                os.lseek(self._fd, offset + done, os.SEEK_SET)
                n = os.readv(self._fd, [part]) if hasattr(os, "readv") else _read_into(self._fd, part)
            if n <= 0:
                raise EOFError(f"{self.path} ends before its data does")
            done += n

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        """Close the descriptor; the mapping goes with the last tensor still viewing it."""
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # tensors still view it: unmapped when they are freed
                pass
            self._map = None
        if self._fd >= 0:
            self._closer()
            self._fd = -1


def _map_copy_on_write(fd: int) -> mmap.mmap | None:
    """The whole file, private and writable, not charged against the commit limit; None where
    the system refuses (the tensors are then read)."""
    try:
        if hasattr(mmap, "MAP_PRIVATE"):
            return mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE | MAP_NORESERVE,
                             prot=mmap.PROT_READ | mmap.PROT_WRITE)
        return mmap.mmap(fd, 0, access=mmap.ACCESS_COPY)  # Windows
    except (OSError, ValueError, OverflowError, TypeError):
        return None


def _read_into(fd: int, view: memoryview) -> int:
    data = os.read(fd, len(view))
    view[:len(data)] = data
    return len(data)
