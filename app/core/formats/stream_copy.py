"""Copy a byte range of one file into the file being written, without passing through Python.

A save after a small edit rewrites mostly unchanged tensors: their bytes are copied from the
opened file by the kernel (``os.copy_file_range``; ``pread``/``write`` in 8 MiB chunks where the
file system or platform offers no such call). Holes of a sparse source stay holes (found with
``SEEK_DATA``/``SEEK_HOLE``): they read as zeros, as before, and take no disk.
"""
from __future__ import annotations

import errno
import os
from typing import Iterator

_STEP = 64 * 1024 * 1024      # bytes between two progress reports (and cancel checks)
_BUFFER = 8 * 1024 * 1024     # the fallback's read size
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF,
                   errno.ETXTBSY, errno.EPERM}


def data_segments(fd: int, start: int, end: int) -> Iterator[tuple[int, int]]:
    """``[begin, stop)`` ranges of ``start..end`` in ``fd`` that hold data (not holes); the
    whole range where the file system cannot tell."""
    seek_data, seek_hole = getattr(os, "SEEK_DATA", None), getattr(os, "SEEK_HOLE", None)
    if seek_data is None or seek_hole is None:
        yield start, end
        return
    pos = start
    while pos < end:
        try:
            begin = os.lseek(fd, pos, seek_data)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # nothing but a hole up to the end of the file
                return
            yield pos, end
            return
        if begin >= end:
            return
        try:
            stop = min(os.lseek(fd, begin, seek_hole), end)
        except OSError:
            stop = end
        yield begin, stop
        pos = stop


def copy_range(src_fd: int, offset: int, nbytes: int, f, report=None) -> None:
    """Append ``nbytes`` of ``src_fd`` from ``offset`` to the buffered binary file ``f``.

    ``report(n)`` (when given) is called as bytes are done; it may raise to cancel.
    """
    f.flush()
    out = f.fileno()
    base = f.tell()
    kernel = hasattr(os, "copy_file_range")
    done_until = offset
    for begin, stop in data_segments(src_fd, offset, offset + nbytes):
        _report_hole(report, begin - done_until)
        pos = begin
        while pos < stop:
            n = min(_STEP, stop - pos)
            if kernel:
                try:
                    _kernel_copy(src_fd, out, pos, base + pos - offset, n)
                except OSError as exc:
                    if exc.errno not in _NO_KERNEL_COPY:
                        raise
                    kernel = False
            if not kernel:
                _buffered_copy(src_fd, out, pos, base + pos - offset, n)
            pos += n
            if report is not None:
                report(n)
        done_until = stop
    _report_hole(report, offset + nbytes - done_until)
    end = base + nbytes
    if os.fstat(out).st_size < end:  # the range ends in a hole: extend, the hole reads as zeros
        os.ftruncate(out, end)
    f.seek(end)


def _report_hole(report, n: int) -> None:
    """A hole: nothing to copy, but done (in steps, like data: a cancel is seen as often)."""
    while report is not None and n > 0:
        report(min(_STEP, n))
        n -= _STEP


def _kernel_copy(src: int, dst: int, src_pos: int, dst_pos: int, n: int) -> None:
    while n > 0:
        done = os.copy_file_range(src, dst, n, src_pos, dst_pos)
        if done == 0:
            raise EOFError("the source file ends before its data does")
        src_pos, dst_pos, n = src_pos + done, dst_pos + done, n - done


def _buffered_copy(src: int, dst: int, src_pos: int, dst_pos: int, n: int) -> None:
    while n > 0:
        chunk = os.pread(src, min(_BUFFER, n), src_pos)
        if not chunk:
            raise EOFError("the source file ends before its data does")
        view = memoryview(chunk)
        while view:
            written = os.pwrite(dst, view, dst_pos)
            view, dst_pos = view[written:], dst_pos + written
        src_pos, n = src_pos + len(chunk), n - len(chunk)
