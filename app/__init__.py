"""paramedit: a desktop editor for PyTorch model parameters.

``paramedit.edit(model)`` opens the editor on a live ``nn.Module`` and returns when it closes;
``paramedit.open_editor(model)`` returns the window at once. Qt is imported only when they are
called.
"""
from __future__ import annotations

if __name__ != "paramedit":  # `import app` inside the checkout: be the one paramedit package
    from ._checkout import become_paramedit as _become
    _become(__name__, __file__, list(__path__))

__version__ = "0.2.0"


def edit(model, **kw):
    """Blocking: open the editor on ``model``; edits change its tensors in place."""
    from .qt.live import edit as _edit
    return _edit(model, **kw)


def open_editor(model, **kw):
    """Non-blocking: open the editor on ``model`` (creating a QApplication if needed)."""
    from .qt.live import open_editor as _open_editor
    return _open_editor(model, **kw)


__all__ = ["edit", "open_editor", "__version__"]
