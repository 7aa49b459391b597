"""GUI-thread stalls (issue 9 / 11): deleting ``optimizer`` from a training checkpoint rebuilds
the tree once, and so do its undo and redo — counted, not timed."""
from __future__ import annotations

import torch
from torch import nn

from tests.checkpoints import training_checkpoint
from tests.helpers.qt import wait_for_document


def test_delete_optimizer_rebuilds_the_tree_once(qtbot, window, tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(100)])
    path = str(tmp_path / "train.pt")
    torch.save(training_checkpoint(model), path)
    window.open_path(path)
    doc = wait_for_document(qtbot, window, path)
    optimizer = [n for n in doc.tensors if n.startswith("optimizer.")]
    assert len(optimizer) >= 300
    assert window.select_name("optimizer")
    qtbot.waitUntil(lambda: window.controller.current_node is not None
                    and window.controller.current_node.full_name == "optimizer")
    model_rows = window.tree_model

    def counts():
        return doc.announcements, model_rows.resets

    before = counts()
    window.edit_flows.actionDelete.trigger()
    assert counts() == (before[0] + 1, before[1] + 1)
    assert not any(n.startswith("optimizer.") for n in doc.tensors)
    assert not window.tree_model.find("optimizer").isValid()

    before = counts()
    window.actionUndo.trigger()
    assert counts() == (before[0] + 1, before[1] + 1)
    assert [n for n in doc.tensors if n.startswith("optimizer.")] == optimizer
    assert window.tree_model.find("optimizer.state.0.exp_avg").isValid()

    before = counts()
    window.actionRedo.trigger()
    assert counts() == (before[0] + 1, before[1] + 1)


def test_cast_of_a_module_rebuilds_once(qtbot, window, tmp_path):
    path = str(tmp_path / "m.pt")
    torch.save({f"enc.{i}.weight": torch.randn(3, 3) for i in range(50)}, path)
    window.open_path(path)
    doc = wait_for_document(qtbot, window, path)
    assert window.select_name("enc")
    qtbot.waitUntil(lambda: window.controller.current_node is not None
                    and window.controller.current_node.full_name == "enc")
    before = window.tree_model.resets
    window.edit_flows.cast_selection("float16")
    assert window.tree_model.resets == before + 1
    assert all(e.dtype == torch.float16 for e in doc.tensors.values())
    window.actionUndo.trigger()
    assert window.tree_model.resets == before + 2
    assert all(e.dtype == torch.float32 for e in doc.tensors.values())
