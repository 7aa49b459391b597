"""Every question goes through the window's ``Prompts``; the file dialogs start in the folder the
last one ended in (kept in QSettings between runs)."""
from __future__ import annotations

import os

import pytest
import torch

from app.qt.main_window import MainWindow
from tests.helpers.prompts import FakePrompts, Unscripted
from tests.helpers.qt import wait_for_document


def _checkpoint(folder, name="ck.pt"):
    folder.mkdir(exist_ok=True)
    path = folder / name
    torch.save({"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2)}, path)
    return str(path)


def test_open_save_as_and_compare_dialogs_start_where_the_last_one_ended(qtbot, window, tmp_path):
    first = _checkpoint(tmp_path / "a")
    window.prompts.answer(open_file=first)
    window.actionOpen.trigger()
    wait_for_document(qtbot, window, first)
    reference = _checkpoint(tmp_path / "refs", "other.pt")
    window.prompts.answer(open_file=reference)
    window.actionCompare.trigger()  # starts in a/, where Open ended
    qtbot.waitUntil(lambda: window.compare_flows.result is not None, timeout=10_000)
    window.prompts.answer(open_file="")
    window.actionOpen.trigger()  # starts in refs/, where Compare ended (not a recent file's)
    window.compare_flows.close_comparison()
    out = tmp_path / "saved" / "out.pt"
    out.parent.mkdir()
    window.prompts.answer(save_file=(str(out), ""))
    window.actionSaveAs.trigger()
    qtbot.waitUntil(lambda: not window.save_flows.is_saving, timeout=10_000)
    assert out.exists()
    folders = [args[1] for args in window.prompts.questions("open_file")]
    assert folders[1:] == [str(tmp_path / "a"), str(tmp_path / "refs")]
    again = MainWindow(prompts=FakePrompts(open_file=""))  # the next run: kept in QSettings
    qtbot.addWidget(again)
    again.actionCompare.setEnabled(True)
    again.actionOpen.trigger()
    assert again.prompts.questions("open_file")[0][1] == str(out.parent)


def test_save_as_of_a_document_without_a_file_starts_in_the_last_folder(qtbot, demo_window,
                                                                          tmp_path):
    from app.qt.settings import remember_folder
    remember_folder(_checkpoint(tmp_path / "here"))
    demo_window.prompts.answer(save_file=("", ""))
    demo_window.actionSaveAs.trigger()
    start = demo_window.prompts.questions("save_file")[0][1]
    assert start == str(tmp_path / "here" / "demo model.pt")


def test_a_question_without_an_answer_fails_instead_of_blocking(window):
    with pytest.raises(Unscripted, match="open_file"):
        window.choose_file()


def test_setting_the_prompts_hands_them_to_every_presenter(window):
    fake = FakePrompts(save_changes="discard")
    window.prompts = fake
    presenters = [window.open_flows, window.edit_flows, window.save_flows, window.file_watch,
                  window.verify_flows, window.compare_flows, window.param_flows,
                  window.entry_flows]
    assert all(p.prompts is fake for p in presenters) and fake.parent is window


def test_errors_are_real_boxes_and_recorded(qtbot, window, tmp_path):
    from PySide6.QtWidgets import QMessageBox
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    window.open_path(bad)
    qtbot.waitUntil(lambda: window.findChild(QMessageBox, "loadErrorBox") is not None,
                    timeout=10_000)
    assert [name for name, *_ in window.prompts.errors] == ["loadErrorBox"]
    window.error_box.close()


def test_a_scripted_trust_answer_is_asked_with_the_globals(qtbot, demo_window, unsafe_file):
    path, marker = unsafe_file
    doc = demo_window.controller.document
    demo_window.prompts.answer(trust=False)
    demo_window.open_path(path)
    qtbot.waitUntil(lambda: bool(demo_window.prompts.questions("trust")), timeout=10_000)
    (asked_path, globals_), = demo_window.prompts.questions("trust")
    assert asked_path == path and globals_ and demo_window.open_flows.trust_box is None
    qtbot.wait(50)
    assert demo_window.controller.document is doc and not os.path.exists(marker)
