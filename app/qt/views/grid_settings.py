"""The grid's display settings kept between runs (in paramedit's QSettings, ``settings.py``):
digits (0 = as many as the dtype holds), scientific notation, heatmap, wrapping vectors into rows
and how many values per row (0 = as many as fit)."""
from __future__ import annotations

from ..settings import settings

DIGITS, SCIENTIFIC, HEATMAP = "grid/digits", "grid/scientific", "grid/heatmap"
WRAP, WRAP_WIDTH = "grid/wrap", "grid/wrapWidth"
DEFAULTS = {DIGITS: 0, SCIENTIFIC: False, HEATMAP: False, WRAP: True, WRAP_WIDTH: 0}


def load() -> dict:
    """Every setting, the default where none was kept or what was kept is unreadable."""
    s, out = settings(), {}
    for key, default in DEFAULTS.items():
        try:
            value = s.value(key, default, type=type(default))
        except (TypeError, ValueError):
            value = default
        out[key] = value if isinstance(value, type(default)) else default
    out[DIGITS] = min(17, max(0, out[DIGITS]))
    out[WRAP_WIDTH] = max(0, out[WRAP_WIDTH])
    return out


def save(key: str, value) -> None:
    settings().setValue(key, type(DEFAULTS[key])(value))
