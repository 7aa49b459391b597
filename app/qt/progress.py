"""Showing a background task's progress in a ``QProgressBar`` without stalling.

``QProgressBar.setValue`` repaints at once; tasks report per record or per MiB (hundreds of
times a second), so the bar moves only in whole percent steps, and at most ``MAX_RATE`` times a
second (the last step, 100 %, always shows), and its repaint is left to the event loop.
"""
from __future__ import annotations

import time

from PySide6.QtWidgets import QProgressBar

SCALE, STEP = 1000, 10  # per mille; redraw every 1 %
MAX_RATE = 10           # redraws a second, at most
SHOWN_AT = "progressShownAt"  # a dynamic property of the bar: when it last moved (``clock()``)
clock = time.monotonic  # a test swaps it for a clock it moves itself


def show_progress(bar: QProgressBar, done, total) -> None:
    """Show ``done`` of ``total`` on ``bar`` (made a 0..``SCALE`` bar), if it is worth a repaint."""
    if not total:
        return
    value = max(0, min(SCALE, int(SCALE * done / total)))
    now = clock()
    if bar.maximum() != SCALE:
        bar.setRange(0, SCALE)
    elif value == bar.value():
        return
    elif value != SCALE and (abs(value - bar.value()) < STEP
                             or now - (bar.property(SHOWN_AT) or -1e9) < 1 / MAX_RATE):
        return
    bar.setProperty(SHOWN_AT, now)
    # setValue repaints at once (a synchronous paint and flush of the window, 10-30 ms on a
    # loaded machine); with updates off it only schedules one, painted with the next batch
    bar.setUpdatesEnabled(False)
    try:
        bar.setValue(value)
    finally:
        bar.setUpdatesEnabled(True)  # schedules the repaint (update())
