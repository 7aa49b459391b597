"""The main window shell: actions, loading off the GUI thread, selection, unsaved-changes prompt."""
from __future__ import annotations

import os

import torch
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QAction, QKeySequence, QUndoCommand
from PySide6.QtWidgets import QLineEdit, QMessageBox, QTreeView, QWidget

from app.qt import main_window as mw
from tests.helpers.prompts import FakePrompts
from tests.helpers.qt import wait_for_document


class Nothing(QUndoCommand):
    """A stand-in edit: only the undo stack's clean state matters here."""

    def redo(self):
        pass

    def undo(self):
        pass


def select(window, full_name):
    """Select a row through the view's selection model, as a click does."""
    view = window.tree_view
    index = window.tree_panel.view_index(window.tree_model.root.find(full_name))
    view.selectionModel().setCurrentIndex(
        index, QItemSelectionModel.ClearAndSelect | QItemSelectionModel.Rows)


def test_contract_actions_and_widgets_exist(window):
    names = ["actionOpen", "actionSave", "actionSaveAs", "actionUndo", "actionRedo", "actionEdit",
             "actionInitialize", "actionExportRecipe"]
    actions = {n: window.findChild(QAction, n) for n in names}
    assert all(actions.values()), [n for n, a in actions.items() if a is None]
    assert actions["actionOpen"].shortcut() == QKeySequence("Ctrl+O")
    assert actions["actionSave"].shortcut() == QKeySequence("Ctrl+S")
    assert actions["actionSaveAs"].shortcut() == QKeySequence("Ctrl+Shift+S")
    assert actions["actionUndo"].shortcut() == QKeySequence(QKeySequence.Undo)
    assert window.findChild(QTreeView, "moduleTree") is window.tree_view
    assert isinstance(window.findChild(QLineEdit, "treeFilter"), QLineEdit)
    assert window.acceptDrops()


def test_open_path_loads_in_background_and_fills_tree(qtbot, window, tied_file):
    path, sd = tied_file
    with qtbot.waitSignal(window.controller.busy, timeout=5000) as started:
        assert window.open_path(path)
    assert started.args == [True]
    assert window.progress_bar.isVisibleTo(window)
    doc = wait_for_document(qtbot, window, path)
    assert set(doc.names()) == set(sd)
    assert not window.progress_bar.isVisibleTo(window)
    assert "tied.pt" in window.windowTitle() and "[*]" in window.windowTitle()
    assert "tensors" in window.summary_label.text() and "torch" in window.summary_label.text()
    assert window.controller.recent.paths()[0] == os.path.abspath(path)


def test_selecting_a_tensor_shows_it(qtbot, window, tied_file):
    path, sd = tied_file
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    with qtbot.waitSignal(window.controller.tensorSelected) as shown:
        select(window, "body.0.weight")
    name, tensor = shown.args
    assert name == "body.0.weight" and torch.equal(tensor, sd["body.0.weight"])
    assert window.controller.current_node.full_name == "body.0.weight"


def test_selecting_a_module_pools_its_tensors_once(qtbot, demo_window):
    with qtbot.waitSignal(demo_window.controller.moduleSelected) as shown:
        select(demo_window, "shared")
    name, tensors = shown.args
    model = demo_window.controller.document.module
    assert name == "shared"
    assert sum(t.numel() for t in tensors) == sum(p.numel() for p in model.shared.parameters())


def test_select_name_expands_to_a_deep_tensor(demo_window):
    assert demo_window.select_name("rgnet.0.3.2.bias")
    index = demo_window.tree_view.currentIndex()
    assert index.data(Qt.UserRole) == "rgnet.0.3.2.bias"
    assert demo_window.tree_view.isExpanded(index.parent())
    assert not demo_window.select_name("no.such.tensor")


def test_filter_box_narrows_the_tree(qtbot, demo_window):
    with qtbot.waitSignal(demo_window.tree_panel.filterApplied, timeout=5000):
        qtbot.keyClicks(demo_window.findChild(QLineEdit, "treeFilter"), "bn.running_*")
    proxy = demo_window.tree_view.model()
    conv = proxy.index(0, 0)
    assert proxy.rowCount() == 1 and conv.data() == "conv"
    bn = proxy.index(0, 0, conv)
    assert [proxy.index(r, 0, bn).data() for r in range(proxy.rowCount(bn))] == [
        "running_mean", "running_var"]


def test_undo_stack_drives_the_modified_marker(demo_window):
    stack = demo_window.controller.undo_stack
    assert not demo_window.isWindowModified()
    stack.push(Nothing("edit"))
    assert demo_window.isWindowModified()
    assert demo_window.findChild(QAction, "actionUndo").isEnabled()
    stack.undo()
    assert not demo_window.isWindowModified()


def test_unsaved_edits_ask_before_replacing(qtbot, demo_window, tied_file, monkeypatch):
    doc = demo_window.controller.document
    demo_window.controller.undo_stack.push(Nothing("edit"))
    asked = []
    demo_window.prompts.answer(save_changes=lambda *_: asked.append(1) or mw.CANCEL)
    assert not demo_window.open_path(tied_file[0])
    assert demo_window.controller.document is doc and not demo_window.controller.is_loading
    demo_window.prompts.answer(save_changes=lambda *_: asked.append(1) or mw.DISCARD)
    assert demo_window.open_path(tied_file[0])
    wait_for_document(qtbot, demo_window, tied_file[0])
    assert len(asked) == 2 and not demo_window.isWindowModified()


def test_close_with_unsaved_edits_can_be_cancelled(qtbot, demo_window, monkeypatch):
    demo_window.show()
    demo_window.controller.undo_stack.push(Nothing("edit"))
    demo_window.prompts.answer(save_changes=mw.CANCEL)
    assert not demo_window.close()
    assert demo_window.isVisible()
    demo_window.prompts.answer(save_changes=mw.DISCARD)
    assert demo_window.close()


def test_a_newer_load_supersedes_an_older_one(qtbot, window, tied_file, other_file):
    changed = []
    window.controller.documentChanged.connect(changed.append)
    window.open_path(tied_file[0])
    window.open_path(other_file[0])
    wait_for_document(qtbot, window, other_file[0])
    qtbot.wait(200)
    assert [d.path for d in changed] == [other_file[0]]


def test_unsafe_pickle_is_refused_with_the_globals_named(qtbot, demo_window, unsafe_file):
    path, marker = unsafe_file
    doc = demo_window.controller.document
    demo_window.open_path(path)
    qtbot.waitUntil(lambda: demo_window.open_flows.trust_box is not None, timeout=10_000)
    box = demo_window.findChild(QMessageBox, "trustDialog")
    text = box.text() + box.informativeText()
    assert "open" in text  # the global the pickle would call
    assert demo_window.last_unsafe is None
    assert not os.path.exists(marker)
    assert demo_window.controller.document is doc
    box.button(QMessageBox.Cancel).click()
    qtbot.waitUntil(lambda: demo_window.open_flows.trust_box is None)
    assert not os.path.exists(marker) and demo_window.controller.document is doc


def test_selected_tensor_reaches_grid_and_histogram(qtbot, window, other_file):
    import pyqtgraph as pg
    from PySide6.QtWidgets import QTableView
    path, sd = other_file
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    select(window, "head.weight")
    grid = window.findChild(QTableView, "tensorGrid")
    qtbot.waitUntil(lambda: grid.model() is not None and grid.model().rowCount() == 2)
    assert grid.model().columnCount() == 6
    assert window.findChild(pg.PlotWidget, "histogramPlot") is not None
    assert window.findChild(QWidget, "statsPanel") is not None


def test_cancel_button_abandons_a_load(qtbot, demo_window, tied_file):
    doc = demo_window.controller.document
    demo_window.open_path(tied_file[0])
    assert demo_window.cancel_button.isVisibleTo(demo_window)
    demo_window.cancel_button.click()  # before the result is delivered: it must be dropped
    qtbot.wait(300)
    assert demo_window.controller.document is doc
    assert not demo_window.controller.is_loading
    assert not demo_window.progress_bar.isVisibleTo(demo_window)


def test_sharded_load_reports_progress(qtbot, window, sharded_folder):
    folder, _ = sharded_folder
    reports = []
    window.controller.progress.connect(lambda done, total: reports.append((done, total)))
    window.open_path(folder)
    wait_for_document(qtbot, window, folder)
    assert reports and reports[-1] == (3, 3)


def test_lazy_tensors_are_read_off_the_gui_thread(qtbot, window, tmp_path):
    from safetensors.torch import save_file
    tensors = {"a.weight": torch.randn(40, 30), "a.bias": torch.randn(40), "b.weight": torch.ones(3)}
    path = str(tmp_path / "lazy.safetensors")
    save_file(tensors, path)
    window.open_path(path)
    doc = wait_for_document(qtbot, window, path)
    with qtbot.waitSignal(window.controller.moduleSelected, timeout=5000) as shown:
        select(window, "a")
    name, pooled = shown.args
    assert name == "a" and sorted(t.numel() for t in pooled) == [40, 1200]
    assert doc.entry("a.weight").is_loaded and not doc.entry("b.weight").is_loaded
    with qtbot.waitSignal(window.controller.tensorSelected, timeout=5000) as shown:
        select(window, "b.weight")
    assert torch.equal(shown.args[1], tensors["b.weight"])


def test_launch_opens_the_demo_or_the_given_path(qtbot, tied_file):
    from argparse import Namespace

    from app.qt.launch import build_window
    demo = build_window(Namespace(path=None, model=None, model_args=None, trust=False))
    qtbot.addWidget(demo)
    assert demo.controller.document.module is not None
    assert "demo model" in demo.windowTitle()
    first = demo.controller.current_node
    assert first is not None and first.full_name == "rgnet.0.0.0.weight"
    assert demo.tree_view.currentIndex().data(Qt.UserRole) == first.full_name
    loaded = build_window(Namespace(path=tied_file[0], model=None, model_args=None, trust=False))
    qtbot.addWidget(loaded)
    wait_for_document(qtbot, loaded, tied_file[0])


def test_reading_message_goes_once_the_tensor_is_shown(qtbot, window, tmp_path):
    from app.qt.controller import SYNC_PRIVATE
    path = tmp_path / "big.pt"
    n = SYNC_PRIVATE // 4 + 1024  # read by a worker
    torch.save({"first": torch.zeros(n), "big": torch.ones(n)}, path)
    window.open_path(str(path))
    wait_for_document(qtbot, window, str(path))
    messages = []
    window.statusBar().messageChanged.connect(messages.append)
    assert window.select_name("big")
    # "big", not any tensor: the first one's read may have ended before "big" was selected
    qtbot.waitUntil(lambda: window.tensor_view.name == "big", timeout=10_000)
    assert any(m.startswith("Reading big") for m in messages)
    assert not window.statusBar().currentMessage().startswith("Reading")


def test_an_empty_window_says_what_to_do(qtbot, window):
    from app.core.model.document import Document
    from PySide6.QtWidgets import QLabel, QPushButton
    window.show()
    qtbot.waitExposed(window)
    hint = window.findChild(QLabel, "emptyHint")
    assert hint.isVisible() and "Drop a checkpoint" in hint.text()
    assert window.findChild(QPushButton, "nanButton").text() == "—"  # not "NaN 0" for nothing
    window.open_document(Document.from_object({"w": torch.zeros(2)}), "t")
    assert not hint.isVisible()


def test_window_layout_is_kept_between_runs(qtbot, window):
    from app.qt.launch import build_window
    from app.qt.settings import restore_layout
    window.show()
    window.resize(640, 480)  # within the offscreen screen: restoreGeometry keeps windows on it
    window.stats_dock.hide()
    qtbot.waitUntil(lambda: window.width() == 640)
    window.close()  # no edits: closes and saves the layout
    again = build_window(type("Args", (), {"path": None})())
    qtbot.addWidget(again)
    again.prompts = FakePrompts(save_changes="discard")
    again.show()
    qtbot.waitUntil(lambda: again.width() == 640 and again.height() == 480)
    assert again.stats_dock.isHidden()
    assert restore_layout(again)


def test_the_end_of_a_read_never_clears_another_message(qtbot, window):
    window.controller.status.emit("Reading big …")
    window.statusBar().showMessage("this format carries no checksums")
    window.controller.statusDone.emit("Reading big …")
    assert window.statusBar().currentMessage() == "this format carries no checksums"
    window.controller.status.emit("Reading big …")
    window.controller.statusDone.emit("Reading big …")
    assert window.statusBar().currentMessage() == ""


def test_the_tree_dock_leaves_the_grid_most_of_the_window(qtbot, window):
    """A checkpoint with long names and every column wide: the tree takes at most 38% of a
    1400 px window (its Type column gives way first), so the grid keeps several columns."""
    from app.core.model.document import Document
    deep = "model.encoder.transformer_layers_with_a_long_name.0.self_attention_block.query_key_value"
    doc = Document.from_object({f"{deep}.weight": torch.zeros(3000, 2048, 1, 1),
                                f"{deep}.bias": torch.zeros(3000, dtype=torch.bfloat16)})
    window.resize(1400, 900)
    window.show()
    qtbot.waitExposed(window)
    window.open_document(doc, "deep")
    qtbot.waitUntil(lambda: bool(window.tree_model.root.children))
    window.fit_docks()
    qtbot.waitUntil(lambda: window.tree_dock.width() <= 0.38 * window.width() + 8)
    assert window.tensor_view.width() >= 0.3 * window.width()
