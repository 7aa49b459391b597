"""Untrusted files in the window: a TorchScript archive that needs its code goes through the same
trust dialog as an unsafe pickle; values nested in a checkpoint appear in the tree where they sit."""
import torch
from PySide6.QtCore import Qt

from tests.corpus.generate import CASES


def test_torchscript_needing_code_asks_for_trust_first(qtbot, window, tmp_path):
    path = CASES["torchscript_setstate_prints"](tmp_path, tmp_path / "marker")
    window.open_path(str(path))
    qtbot.waitUntil(lambda: window.open_flows.trust_box is not None, timeout=15_000)
    box = window.open_flows.trust_box
    assert "TorchScript code" in box.informativeText()
    assert window.controller.document is None  # nothing ran before the user said so
    box.trust_button.click()
    qtbot.waitUntil(lambda: window.controller.document is not None, timeout=15_000)
    doc = window.controller.document
    assert doc.format == "torchscript" and doc.names() == ["w"]


def test_nested_values_are_tree_rows(qtbot, window, tmp_path):
    ck = {"model": {"w": torch.ones(2)}, "optimizer": {"param_groups": [{"lr": 0.01}]},
          "epoch": 3}
    path = tmp_path / "ck.pt"
    torch.save(ck, path)
    window.open_path(str(path))
    qtbot.waitUntil(lambda: window.controller.document is not None, timeout=15_000)
    index = window.tree_model.find("optimizer.param_groups.0.lr")
    assert index.isValid() and index.data(Qt.DisplayRole) == "lr"
    assert window.tree_model.find("epoch").isValid()
