"""What a presenter (``qt/*_flows.py``) shows things in: the window's three views and the window
itself as the parent of its dialogs and actions, with its menu bar, status bar and the public
methods a presenter calls (``fit_docks``, ``set_busy``, ``update_title``, ``update_summary``,
``select_name``, ``dialog_folder``). Nothing private of the window goes through it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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
