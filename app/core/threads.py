"""Torch work on one core: ``with one_thread(): ...``.

Chunked passes (statistics previews, comparisons) do a few cheap operations per chunk: an OpenMP
team waiting at a barrier per operation costs more than it gains, and with the cores busy
elsewhere (a background task, another process) it made such work 10-40x slower (measured: a
6 ms preview took 80 ms; 8M-element comparisons 1.1-10 s instead of 0.26 s). With OpenMP the
setting belongs to the calling thread, so a worker's choice leaves the GUI thread's alone.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
