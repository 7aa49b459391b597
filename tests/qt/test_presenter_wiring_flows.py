"""Issue 11: presenters receive what they use. Each takes ``views`` (``window_views.Views``) and
keyword dependencies, and touches nothing private of the window: the window's parts a presenter
may use are the Views' widgets and the window's public methods and actions."""
from __future__ import annotations

import inspect

import pytest

from app.qt import (compare_flows, edit_busy, edit_flows, entry_flows, file_watch, help_flows,
                    open_flows, param_flows, save_flows, verify_flows)

PRESENTERS = [compare_flows.CompareFlows, edit_flows.EditFlows, entry_flows.EntryFlows,
              file_watch.FileWatch, help_flows.HelpFlows, open_flows.OpenFlows,
              param_flows.ParamFlows, save_flows.SaveFlows, verify_flows.VerifyFlows,
              edit_busy.EditBusy]


@pytest.mark.parametrize("cls", PRESENTERS, ids=lambda c: c.__name__)
def test_each_presenter_says_what_it_receives(cls):
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert params[0].name == "views"
    assert all(p.kind is p.KEYWORD_ONLY for p in params[2:] if p.name != "edits")


def test_the_window_methods_presenters_call_are_public(window):
    for name in ("fit_docks", "set_busy", "update_title", "update_summary", "select_name",
                 "dialog_folder", "open_path", "dropped_path"):
        assert callable(getattr(window, name))
    for presenter in (window.edit_flows, window.save_flows, window.compare_flows,
                      window.param_flows, window.entry_flows, window.open_flows,
                      window.verify_flows, window.file_watch, window.help_flows):
        views = presenter.views
        assert (views.window, views.tree, views.grid, views.stats) == (
            window, window.tree_panel, window.tensor_view, window.stats_panel)
