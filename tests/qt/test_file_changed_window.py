"""The open file rewritten underneath by ``torch.save`` while the window shows it (issue 9):
the window asks before reading or saving, keeps what was read (with the edits), and the test
process survives the truncating rewrite that used to be SIGBUS."""
from __future__ import annotations

import os
import time

import pytest
import torch
from PySide6.QtCore import Qt

from app.core.edits.values import FillEdit
from app.qt.file_watch import CANCEL, KEEP, RELOAD
from tests.helpers.qt import wait_for_document


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {f"layer{i}.weight": torch.randn(64, 64, generator=g) for i in range(4)}


@pytest.fixture
def opened(qtbot, window, tmp_path):
    path = str(tmp_path / "ckpt.pt")
    torch.save(_state(), path)
    window.open_path(path)
    doc = wait_for_document(qtbot, window, path)
    qtbot.waitUntil(lambda: window.tensor_view.name == "layer0.weight")
    asked: list[tuple[list[str], str]] = []
    answers: list[str] = []

    def ask(paths, what):
        asked.append((list(paths), what))
        return answers.pop(0)
    window.prompts.answer(file_changed=ask)
    return window, doc, path, asked, answers


def _grid_value(window, row=0, col=0) -> str:
    model = window.tensor_view.grid.model()
    return model.data(model.index(row, col), Qt.DisplayRole)


def test_truncating_rewrite_keep_what_was_read(qtbot, opened, tmp_path):
    window, doc, path, asked, answers = opened
    assert not doc.file_backed(doc.entry("layer0.weight").tensor())  # shown = read privately
    assert window.edit_flows.push(FillEdit(["layer0.weight"], 5.0))
    torch.save({"x": torch.zeros(3)}, path)  # the training loop: truncates the open file
    qtbot.waitUntil(lambda: "changed on disk" in window.statusBar().currentMessage(), timeout=5000)
    assert asked == []  # nothing asked until something would be read

    answers.append(KEEP)
    window.select_name("layer2.weight")  # never read: used to be SIGBUS here
    assert asked == [([os.path.abspath(path)], "read")]
    qtbot.waitUntil(lambda: "unavailable" in window.statusBar().currentMessage())
    assert window.tensor_view.name == ""
    assert doc.unavailable == {"layer1.weight", "layer2.weight", "layer3.weight"}
    assert "unavailable" in window.tree_model.notes["layer3.weight"]

    window.select_name("layer0.weight")  # read before: still there, with the edit
    qtbot.waitUntil(lambda: window.tensor_view.name == "layer0.weight")
    assert float(_grid_value(window)) == 5.0
    assert torch.all(doc.tensor("layer0.weight") == 5.0)

    assert not window.save_flows.save()  # Ctrl+S: the lost tensors cannot be written
    assert window.file_watch.notice_box is not None
    assert len(asked) == 1  # the choice was made once
    from app.core.edits.surgery import DeleteEdit
    for name in ("layer1.weight", "layer2.weight", "layer3.weight"):
        assert window.edit_flows.push(DeleteEdit(name))
    out = str(tmp_path / "kept.pt")
    assert window.save_flows.save_to(out, "torch", wait=True)
    saved = torch.load(out, weights_only=True)
    assert list(saved) == ["layer0.weight"] and torch.all(saved["layer0.weight"] == 5.0)


def test_same_size_rewrite_reload_shows_the_new_values(qtbot, opened):
    window, doc, path, asked, answers = opened
    new = _state(seed=7)
    torch.save(new, path)  # same names and shapes: same size, other values
    answers.append(RELOAD)
    window.select_name("layer1.weight")
    assert asked and asked[0][1] == "read"
    qtbot.waitUntil(lambda: window.controller.document is not doc, timeout=10_000)
    wait_for_document(qtbot, window, path)
    fresh = window.controller.document
    assert fresh.files_changed() == []
    assert torch.equal(fresh.tensor("layer1.weight"), new["layer1.weight"])


def test_same_size_rewrite_never_shows_new_values_under_the_old_document(qtbot, opened):
    window, doc, path, asked, answers = opened
    torch.save(_state(seed=7), path)  # same size: the mapping would show these values
    answers.append(CANCEL)
    window.select_name("layer1.weight")
    assert asked and window.tensor_view.name == ""
    assert doc.files_changed()  # nothing decided: asked again next time
    answers.append(KEEP)
    window.select_name("layer2.weight")
    assert len(asked) == 2
    assert {"layer1.weight", "layer2.weight"} <= doc.unavailable
    assert window.tensor_view.name == ""
    assert torch.equal(doc.tensor("layer0.weight"), _state()["layer0.weight"])  # the old values


def test_save_asks_first_and_cancel_writes_nothing(qtbot, opened):
    window, doc, path, asked, answers = opened
    assert window.edit_flows.push(FillEdit(["layer0.weight"], 1.0))
    torch.save({"x": torch.zeros(3)}, path)
    before = open(path, "rb").read()
    answers.append(CANCEL)
    assert not window.save_flows.save()
    assert asked == [([os.path.abspath(path)], "save")]
    assert open(path, "rb").read() == before
    assert window.controller.is_modified


def test_own_save_is_not_a_change_and_rename_replacement_is_watched(qtbot, opened):
    window, doc, path, asked, answers = opened
    assert window.edit_flows.push(FillEdit(["layer0.weight"], 2.0))
    assert window.save_flows.save(wait=True)
    assert doc.files_changed() == []
    window.select_name("layer3.weight")
    qtbot.waitUntil(lambda: window.tensor_view.name == "layer3.weight")
    assert asked == []
    tmp = path + ".tmp"
    torch.save(_state(seed=3), tmp)
    os.replace(tmp, path)  # an atomic writer: new inode, the old watch is gone
    qtbot.waitUntil(lambda: "changed on disk" in window.statusBar().currentMessage(), timeout=5000)
    assert os.path.abspath(path) in window.file_watch.watcher.files()


def test_selecting_while_our_own_save_replaces_the_file_asks_nothing(qtbot, opened):
    """The save's worker has replaced the file but the window has not heard back yet (it
    restamps then): a tensor selected meanwhile (the first tensor's delayed selection after
    opening did this) is read from the file that was opened, without a question."""
    window, doc, path, asked, answers = opened
    before = os.stat(path).st_ino
    assert window.edit_flows.push(FillEdit(["layer1.weight"], 2.0))
    assert window.save_flows.save()  # started; its outcome arrives through the event loop
    for _ in range(2000):  # the worker replaces the file; no event is processed meanwhile
        if os.path.exists(path) and os.stat(path).st_ino != before:
            break
        time.sleep(0.005)
    assert window.save_flows.is_saving and os.stat(path).st_ino != before
    window.select_name("layer2.weight")
    assert asked == []
    qtbot.waitUntil(lambda: not window.save_flows.is_saving, timeout=20_000)
    qtbot.waitUntil(lambda: window.tensor_view.name == "layer2.weight")
    assert asked == [] and doc.files_changed() == []
