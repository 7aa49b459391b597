"""Run a job per chunk on the calling thread and helper threads, results in chunk order.

Torch and numpy release the GIL inside their kernels, so a second thread with a core of its
own can take half of the arithmetic (see ``default_threads`` for when it pays). Threads take
the next chunk from a shared counter (a loaded machine slows one of them down without idling
the other); each result lands at its chunk's index, so callers that add the results up in index order get the same numbers however
the chunks were shared out. Only the calling thread calls ``progress`` and ``cancelled``
(callers hand in GUI callbacks), and it never returns before its helpers have stopped: the
tensors may be views of a file that is closed right after.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

from ..errors import Cancelled
from ..threads import one_thread

R = TypeVar("R")

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def default_threads() -> int:
    """Threads a comparison uses: 2 where at least 4 CPUs make an idle core likely, else 1.

    Measured on 2 busy CPUs (benchmarks/bench_diff.py): a second thread took about as long,
    with 5-50% more CPU time, as the two threads trade the GIL between the short calls of
    each chunk (about 6 switches per chunk); it only pays with a core to itself."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return 2 if cpus >= 4 else 1


def _helpers(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < n:  # made once (grown if asked for more), then kept
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="paramedit-chunks")
            _pool_size = n
        return _pool


def map_chunks(indices: Sequence[int], make_job: Callable[[], Callable[[int], R]],
               sizes: Sequence[int], results: list, *, threads: int = 1,
               progress: Callable[[int], None] | None = None,
               cancelled: Callable[[], bool] | None = None) -> None:
    """``results[i] = job(i)`` for every ``i`` of ``indices``, on ``threads`` threads.

    Each thread makes its own ``job`` with ``make_job()`` (its scratch buffers). ``progress(n)``
    gets the number of elements (``sizes[i]``) done since its last call; ``cancelled()`` is
    polled before each chunk of the calling thread and raises ``Cancelled`` once helpers stop.
    """
    if threads <= 1 or len(indices) <= 1:  # no counter, lock or bookkeeping per chunk
        job = make_job()
        for i in indices:
            if cancelled is not None and cancelled():
                raise Cancelled()
            results[i] = job(i)
            if progress is not None:
                progress(sizes[i])
        return
    todo = iter(indices)
    take_lock = threading.Lock()
    stop = threading.Event()
    helper_done = [0] * max(0, threads - 1)

    def take() -> int | None:
        with take_lock:
            return next(todo, None)

    def helper(slot: int) -> None:
        with one_thread():  # OpenMP's setting is per thread: one, like the caller's
            job = make_job()
            while not stop.is_set():
                i = take()
                if i is None:
                    return
                results[i] = job(i)
                helper_done[slot] += sizes[i]

    pool = _helpers(threads - 1)
    futures: list[Future] = [pool.submit(helper, s)
                             for s in range(min(threads - 1, len(indices) - 1))]
    own = reported = 0

    def report() -> None:
        nonlocal reported
        done = own + sum(helper_done)
        if progress is not None and done > reported:
            progress(done - reported)
        reported = done

    try:
        job = make_job()
        while True:
            if cancelled is not None and cancelled():
                raise Cancelled()
            i = take()
            if i is None:
                break
            results[i] = job(i)
            own += sizes[i]
            report()
    finally:
        stop.set()
        for f in futures:
            if not f.cancel():  # one still queued behind another comparison never starts
                f.exception()  # wait: the helper may still be reading the tensors
    for f in futures:
        if not f.cancelled() and f.exception() is not None:
            raise f.exception()
    report()
