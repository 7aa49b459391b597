"""The cyclic garbage collector paused while a reader makes many objects that are not garbage
(100k tensors' entries, 100k zip records): run again and again while they pile up, it walked all
of them each time, holding the GIL. The switch is process-wide, so only the reader that turned it
off turns it back on."""
from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def collector_paused(age_what_was_made: bool = False):
    """``age_what_was_made``: what was made meanwhile (a whole document) goes to the oldest
    generation as it is; otherwise the first collection after ``enable`` walks all of it (a
    quarter of the build time at 100k tensors), and the next one again."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            if age_what_was_made:
                gc.freeze()
                gc.unfreeze()
            gc.enable()
