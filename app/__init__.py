"""paramedit: a desktop editor for PyTorch model parameters.

``app.edit(model)`` opens the editor on a live ``nn.Module`` and returns when it closes;
``app.open_editor(model)`` returns the window at once. Qt is imported only when they are called.
"""
from __future__ import annotations

__version__ = "0.1.0"


def edit(model, **kw):
    """Blocking: open the editor on ``model``; edits change its tensors in place."""
    from app.qt.live import edit as _edit
    return _edit(model, **kw)


def open_editor(model, **kw):
    """Non-blocking: open the editor on ``model`` (creating a QApplication if needed)."""
    from app.qt.live import open_editor as _open_editor
    return _open_editor(model, **kw)


__all__ = ["edit", "open_editor", "__version__"]
