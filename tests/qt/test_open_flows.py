"""Trusting a full-model pickle, and opening a state_dict with model code, through the window."""
import textwrap

import pytest
import torch
from PySide6.QtCore import Qt

from app.qt.models.tree_model import NOTE_COLOR

FACTORY = textwrap.dedent('''
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(3, 3)

    class Net(nn.Module):
        def __init__(self, width=4):
            super().__init__()
            self.block = Block()
            self.head = nn.Linear(3, width)

    def make(width=4):
        return Net(width)
''')


@pytest.fixture
def model_module(tmp_path, monkeypatch):
    (tmp_path / "qtfactory.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    import qtfactory
    return importlib.reload(qtfactory)


def wait_doc(qtbot, window, path):
    qtbot.waitUntil(lambda: window.controller.document is not None
                    and window.controller.document.path == str(path), timeout=15_000)
    return window.controller.document


def test_trusting_a_full_model_pickle_loads_a_live_model(qtbot, window, tmp_path, model_module):
    path = tmp_path / "full.pt"
    torch.save(model_module.make(), path)
    window.open_path(str(path))
    qtbot.waitUntil(lambda: window.open_flows.trust_box is not None, timeout=10_000)
    box = window.open_flows.trust_box
    assert "qtfactory.Net" in box.informativeText()
    assert window.controller.document is None  # nothing loaded before the user says so
    box.trust_button.click()
    doc = wait_doc(qtbot, window, path)
    assert doc.module is not None and type(doc.module).__name__ == "Net"
    assert doc.entry("block.proj.weight").tensor() is doc.module.block.proj.weight
    assert window.tree_model.find("block.proj").data(Qt.DisplayRole) == "proj"


def test_open_with_model_code_reports_and_marks_mismatches(qtbot, window, tmp_path, model_module):
    sd = model_module.make().state_dict()
    del sd["head.bias"]                          # missing
    sd["block.proj.weight"] = torch.zeros(5, 5)  # mismatched
    sd["extra"] = torch.ones(2)                  # unexpected
    path = tmp_path / "sd.pt"
    torch.save(sd, path)
    dialog = window.open_flows.choose_model_code()
    qtbot.waitUntil(dialog.isVisible)
    dialog.path.setText(str(path))
    qtbot.keyClicks(dialog.factory, "qtfactory:make")
    qtbot.keyClicks(dialog.args, '{"width": 4}')
    dialog.buttons.button(dialog.buttons.StandardButton.Open).click()
    doc = wait_doc(qtbot, window, path)
    assert type(doc.module).__name__ == "Net"
    report = doc.load_report
    assert report["missing"] == ["head.bias"] and "block.proj.weight" in report["mismatched"]
    qtbot.waitUntil(lambda: window.open_flows.report_box is not None)
    assert "head.bias" in window.open_flows.report_box.detailedText()
    index = window.tree_model.find("head.bias")
    assert index.data(Qt.ForegroundRole) == NOTE_COLOR
    assert "Missing from the checkpoint" in index.data(Qt.ToolTipRole)
    window.open_flows.report_box.close()


def test_model_code_dialog_refuses_bad_input(qtbot, window):
    dialog = window.open_flows.choose_model_code()
    dialog.path.setText("x.pt")
    qtbot.keyClicks(dialog.factory, "no_colon_here")
    dialog.buttons.button(dialog.buttons.StandardButton.Open).click()
    assert dialog.isVisible() and "package.module:function" in dialog.error.text()
    dialog.factory.setText("a:b")
    dialog.args.setText("{not json")
    dialog.buttons.button(dialog.buttons.StandardButton.Open).click()
    assert dialog.isVisible() and "JSON" in dialog.error.text()
    dialog.reject()
