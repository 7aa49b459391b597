"""Where the icons live: ``paramedit/resources`` in an installed wheel, ``resources/`` in the checkout."""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent


def resource_dir() -> str:
    installed = _PACKAGE / "resources"
    return str(installed if installed.is_dir() else _PACKAGE.parent / "resources")
