"""Holding off a rewrite of an open file while something reads its memory map (Linux leases).

The stamps in ``file_stamps`` let nothing *start* reading a file that changed on disk, but a
read already running (statistics of a big tensor on a worker) touches the mapping while another
process truncates the file: SIGBUS kills the window with its edits. A read lease closes that gap:
the kernel makes the other process's ``open`` for writing (``torch.save`` to the path) wait until
the lease is given up.

The leases are held by a small child process (``lease_keeper``), not by this one: a writer in
this very process (a notebook saving to the file the editor shows) blocks in ``open`` holding the
GIL, so no thread of ours could answer it; the child can. When a lease breaks, the child tells us
(the file is marked as about to be rewritten: reads refuse from then on), waits until no read is
in flight (``reading()``, a counter in memory shared with the child), and gives the lease up.

A lease can only be taken on a file the user owns that no one has open for writing. Where it
cannot be taken (another user's file, a file system without leases, not Linux), nothing
changes: the stamps still refuse reads that start after the rewrite.
"""
from __future__ import annotations

import contextlib
import mmap
import os
import queue
import struct
import subprocess
import sys
import threading
from typing import Callable, Iterable

from . import lease_keeper

#: how long ``hold`` waits for the child's answer
ANSWER_S = 5.0

_lock = threading.Lock()
_readers = 0
_shared: mmap.mmap | None = None
_child: subprocess.Popen | None = None
_answers: "queue.Queue[tuple[str, str]]" = queue.Queue()
#: path -> on_break, for the leases held
_held: dict[str, Callable[[str], None]] = {}
#: the thread that started the keeper last (the window starts it from a loading worker)
started_by: str | None = None


def available() -> bool:
    """Linux, and a Python interpreter to run the keeper with (not a frozen application)."""
    return (sys.platform.startswith("linux") and hasattr(os, "memfd_create")
            and bool(sys.executable) and not getattr(sys, "frozen", False))


def prepare() -> None:
    """Start the keeper now (a process start: ~40 ms), e.g. in a loading worker, so that the
    first ``hold`` (on the GUI thread, once the document is shown) finds it running."""
    if available():
        with _lock:
            _start()


def _start() -> bool:  # with _lock held
    global _shared, _child, started_by
    if _child is not None and _child.poll() is None:
        return True
    started_by = threading.current_thread().name
    fd = os.memfd_create("paramedit-readers")
    try:
        os.ftruncate(fd, mmap.PAGESIZE)
        _shared = mmap.mmap(fd, mmap.PAGESIZE)
        _child = subprocess.Popen(
            [sys.executable, "-I", "-S", lease_keeper.__file__, str(fd)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            pass_fds=(fd,), close_fds=True)
    except OSError:
        _child = None
        return False
    finally:
        os.close(fd)
    struct.pack_into("q", _shared, 0, _readers)
    threading.Thread(target=_listen, args=(_child,), name="paramedit-file-leases",
                     daemon=True).start()
    return True


def _send(command: str, path: str) -> bool:  # with _lock held
    try:
        _child.stdin.write(f"{command} {os.fsencode(path).hex()}\n".encode())
        _child.stdin.flush()
        return True
    except (OSError, ValueError, AttributeError):
        return False


def hold(paths: Iterable[str], on_break: Callable[[str], None]) -> list[str]:
    """Take a read lease on each file of ``paths``; ``on_break(path)`` runs (on a thread of
    this module) when a process, this one included, opens that file for writing. Returns the
    paths held."""
    paths = [p for p in paths if p not in _held]
    if not paths or not available():
        return []
    with _lock:
        if not _start():
            return []
        while not _answers.empty():
            _answers.get_nowait()
        asked = [p for p in paths if _send("hold", p)]
    got = []
    for _ in asked:
        try:
            answer, path = _answers.get(timeout=ANSWER_S)
        except queue.Empty:
            break
        if answer == "held":
            with _lock:
                _held[path] = on_break
            got.append(path)
    return got


def held() -> list[str]:
    with _lock:
        return list(_held)


def release(paths: Iterable[str] | None = None) -> None:
    """Give up the leases on ``paths`` (all when None)."""
    with _lock:
        for path in list(_held) if paths is None else list(paths):
            if _held.pop(path, None) is not None:
                _send("release", path)


@contextlib.contextmanager
def reading():
    """A read of file-backed memory is in flight: a breaking lease waits for its end."""
    global _readers
    with _lock:
        _readers += 1
        if _shared is not None:
            struct.pack_into("q", _shared, 0, _readers)
    try:
        yield
    finally:
        with _lock:
            _readers -= 1
            if _shared is not None:
                struct.pack_into("q", _shared, 0, _readers)


def _listen(child: subprocess.Popen) -> None:
    """The child's news: answers to ``hold``, and leases breaking (marked, then acknowledged:
    the child gives the lease up once we know and nothing reads)."""
    for line in child.stdout:
        kind, _, code = line.decode().strip().partition(" ")
        try:
            path = os.fsdecode(bytes.fromhex(code))
        except ValueError:
            continue
        if kind in ("held", "refused"):
            _answers.put((kind, path))
        elif kind == "breaking":
            with _lock:
                on_break = _held.pop(path, None)
            if on_break is not None:
                with contextlib.suppress(Exception):  # the lease is given up regardless
                    on_break(path)
            with _lock:
                _send("ack", path)


@contextlib.contextmanager
def leased(*docs):
    """For a command that reads every tensor (``inspect --stats``, ``diff``): the documents'
    files leased meanwhile; a file about to be rewritten is marked on its document, whose
    ``guard`` then refuses the next read with one error line."""
    held_here = []
    for doc in docs:
        held_here += hold(doc.files.paths, doc.files.breaking.add)
    try:
        yield
    finally:
        release(held_here)
