"""Typing in the tree's filter box: each key is answered at the next turn of the event loop (a
regex still waits for a pause), from whole-column numpy passes over the names, with recent
answers kept (a backspace scans nothing) and which rows show decided for every node at once."""
from __future__ import annotations

import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from app.core import name_index
from app.core.model.document import Document
from app.qt.views.tree_panel import ModuleTreePanel
from tests.helpers.qt import tree_rows


def typed_panel(qtbot, layers=40) -> ModuleTreePanel:
    sd = {f"model.layers.{i}.{p}.{leaf}": torch.zeros(2) for i in range(layers)
          for p in ("q_proj", "k_proj", "mlp") for leaf in ("weight", "bias")}
    panel = ModuleTreePanel()
    qtbot.addWidget(panel)
    panel.resize(900, 600)
    panel.show()
    panel.show_root(Document.from_object(sd).root)
    panel.filter.setFocus()
    panel._build_index()  # what focusing the box does (offscreen windows may not take focus)
    qtbot.waitUntil(lambda: panel._index is not None, timeout=5000)
    return panel


def shown(panel) -> list[str]:
    return [full for full, _ in tree_rows(panel.view.model())]


def expected(panel, keep) -> list[str]:
    """The tensors ``keep`` passes and their ancestors, in tree order."""
    names = set()
    for node in panel.model.root.walk():
        if node.entry is not None and keep(node.full_name):
            while node is not panel.model.root:
                names.add(node.full_name)
                node = node.parent
    return [n.full_name for n in panel.model.root.walk() if n.full_name in names]


def turns(times=3) -> None:
    for _ in range(times):
        QApplication.processEvents()


def test_a_keystroke_is_answered_at_the_next_turn_of_the_event_loop(qtbot):
    """It waited 150 ms for a next key: every answer came 150 ms late."""
    panel = typed_panel(qtbot)
    applied = []
    panel.filterApplied.connect(applied.append)
    qtbot.keyClick(panel.filter, "q")
    turns()
    assert applied == [len(panel.proxy.matches)] and applied[0] > 0
    qtbot.keyClicks(panel.filter, "_proj.b")  # keys that come together: one pass
    turns()
    assert len(applied) == 2
    assert shown(panel) == expected(panel, lambda n: "q_proj.b" in n)


def test_a_regex_still_waits_for_a_pause(qtbot):
    panel = typed_panel(qtbot)
    applied = []
    panel.filterApplied.connect(applied.append)
    qtbot.keyClicks(panel.filter, r"re:layers\.1\.q")
    turns()
    assert applied == []  # "re:(" half typed is an error: no pass per key
    qtbot.waitUntil(lambda: bool(applied), timeout=3000)
    assert shown(panel) == expected(panel, lambda n: n.startswith("model.layers.1.q"))


def test_a_backspace_is_answered_from_the_kept_matches_without_a_scan(qtbot, monkeypatch):
    panel = typed_panel(qtbot)
    for ch in "weight":
        qtbot.keyClick(panel.filter, ch)
        turns()
    scans = []
    plain = name_index.NameIndex._match
    monkeypatch.setattr(name_index.NameIndex, "_match",
                        lambda self, *a: scans.append(a) or plain(self, *a))
    for _ in range(3):
        qtbot.keyClick(panel.filter, Qt.Key_Backspace)
        turns()
    assert panel.filter.text() == "wei" and scans == []
    assert shown(panel) == expected(panel, lambda n: "wei" in n)
    qtbot.keyClick(panel.filter, "r")  # a new text is scanned
    turns()
    assert len(scans) == 1 and shown(panel) == []


def test_a_star_glob_is_matched_without_a_regex_per_name(qtbot, monkeypatch):
    """``*`` globs are numpy passes over all names (a backtracking regex per name took
    40-140 ms at 100k tensors); ``?`` and ``[...]`` still use the regex."""
    panel = typed_panel(qtbot)

    def no_regex(pattern):
        raise AssertionError(f"a regex per name for {pattern!r}")
    monkeypatch.setattr(name_index, "_tail_glob", no_regex)
    qtbot.keyClicks(panel.filter, "layers.1*.*_proj.b*")
    turns()
    assert shown(panel) == expected(
        panel, lambda n: n.startswith("model.layers.1") and "_proj.b" in n)
    monkeypatch.undo()
    panel.filter.clear()
    qtbot.keyClicks(panel.filter, "layers.?.mlp.[wb]*")
    turns()
    assert shown(panel) == expected(panel, lambda n: n.count(".") == 4 and ".mlp." in n
                                    and len(n.split(".")[2]) == 1)


def test_which_rows_show_is_decided_for_every_node_at_once(qtbot, monkeypatch):
    """The model asked ``NameIndex.shown`` (a Python bisection) for each child of each parent
    the view laid out: 2,500 calls for one wide parent at 100k tensors."""
    panel = typed_panel(qtbot)

    def per_child(*_args):
        raise AssertionError("a call per child")
    monkeypatch.setattr(name_index.NameIndex, "shown", per_child)
    qtbot.keyClicks(panel.filter, "k_proj.w")
    turns()
    assert shown(panel) == expected(panel, lambda n: "k_proj.w" in n)
    layers = panel.view_index(panel.model.root.find("model.layers"))
    assert panel.view.isExpanded(layers) and panel.model.rowCount(layers) == 40
