"""Showing a background task's progress in a status-bar ``QProgressBar`` without stalling.

``QProgressBar.setValue`` repaints at once; tasks report per record or per MiB (hundreds of
times a second), so the bar moves only in whole percent steps.
"""
from __future__ import annotations

from PySide6.QtWidgets import QProgressBar

SCALE, STEP = 1000, 10  # per mille; redraw every 1 %


def show_progress(bar: QProgressBar, done, total) -> None:
    if not total:
        return
    value = max(0, min(SCALE, int(SCALE * done / total)))
    if bar.maximum() != SCALE:
        bar.setRange(0, SCALE)
        bar.setValue(value)
    elif abs(value - bar.value()) >= STEP or (value == SCALE and bar.value() != SCALE):
        bar.setValue(value)
