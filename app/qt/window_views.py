"""What a presenter (``qt/*_flows.py``) shows things in: the window's three views and the window
itself as the parent of its dialogs and actions, with its menu bar, status bar and the public
methods a presenter calls (``fit_docks``, ``set_busy``, ``update_title``, ``update_summary``,
``select_name``, ``dialog_folder``). Nothing private of the window goes through it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

if TYPE_CHECKING:  # the window imports the presenters, which import this
    from .main_window import MainWindow
    from .views.stats_panel import StatsPanel
    from .views.tensor_view import TensorView
    from .views.tree_panel import ModuleTreePanel


@dataclass(frozen=True)
class Views:
    """The views a presenter reads and updates.

    Parameters
    ----------
    window
        The parent of the presenter's dialogs, actions and tool bars; its menu bar, status bar,
        actions (``actionSave``…) and public methods.
    tree
        The module tree panel (``tree.view``, ``tree.model``, ``tree.proxy``).
    grid
        The tensor view (the grid, its model and the heatmap).
    stats
        The statistics panel (with the histogram).
    """

    window: "MainWindow"
    tree: "ModuleTreePanel"
    grid: "TensorView"
    stats: "StatsPanel"


class Presenter(QObject):
    """The base of the presenters: a child of the window that keeps what it was handed.

    Parameters
    ----------
    views
        Where it shows things (``Views``); ``views.window`` is its Qt parent.
    controller, prompts, status
        The document and selection, every question it asks, a ``status(text, timeout_ms)`` sink.
    edit_flows
        The presenter that pushes edits, for those that make them.
    """

    def __init__(self, views: Views, *, controller, prompts, status, edit_flows=None):
        super().__init__(views.window)
        self.views = views
        self.window = views.window  # dialogs' parent; menu bar, status bar, actions
        self.controller = controller
        self.prompts = prompts
        self.status = status
        if edit_flows is not None:
            self.edit_flows = edit_flows
