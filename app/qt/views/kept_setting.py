"""Reading one of the statistics panel's kept settings (QSettings) as the type it should be."""
from __future__ import annotations


def kept_setting(store, key: str, default, kind):
    """A kept setting, or ``default`` when it is missing or not a ``kind``."""
    value = store.value(key, default)
    try:
        if kind is bool:
            return value if isinstance(value, bool) else str(value).lower() == "true"
        if kind is int:
            return int(value)
        return kind(value)
    except (TypeError, ValueError):
        return default
