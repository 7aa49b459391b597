"""Save As offers what users load: both layouts of tied tensors in safetensors, TorchScript
archives written back into themselves, a live model saved as its ``state_dict()``."""
from __future__ import annotations

import torch
from safetensors.torch import load_file
from torch import nn

from app.core.edits.values import FillEdit
from app.core.formats.save import SAFETENSORS, TIED_EVERY, TORCHSCRIPT
from app.qt import save_flows as sf
from tests.checkpoints import TiedLM
from tests.helpers.qt import wait_for_document


def wait_saved(qtbot, window):
    qtbot.waitUntil(lambda: not window.save_flows.is_saving, timeout=20_000)


def test_save_as_offers_every_tied_name_and_says_which_to_use(qtbot, window, tied_file, tmp_path):
    path, sd = tied_file
    window.open_path(path)
    doc = wait_for_document(qtbot, window, path)
    filters = sf.save_as_filters(doc).split(";;")
    assert sf.SAFETENSORS_FILTER in filters and sf.SAFETENSORS_EVERY_FILTER in filters
    assert sf.tied_from_choice(sf.SAFETENSORS_EVERY_FILTER) == TIED_EVERY
    assert sf.format_from_choice(str(tmp_path / "x"), sf.SAFETENSORS_EVERY_FILTER)[1] == SAFETENSORS
    out = tmp_path / "every.safetensors"
    window.prompts.answer(save_file=(str(out), sf.SAFETENSORS_EVERY_FILTER))
    window.actionSaveAs.trigger()
    wait_saved(qtbot, window)
    TiedLM().load_state_dict(load_file(str(out)), strict=True)  # plain load_file works
    once = tmp_path / "once.safetensors"
    window.prompts.answer(save_file=(str(once), sf.SAFETENSORS_FILTER))
    window.actionSaveAs.trigger()
    wait_saved(qtbot, window)
    assert "lm_head.weight" not in load_file(str(once))
    assert "load_model" in window.statusBar().currentMessage()  # says how to load it


def test_window_save_writes_torchscript_back(qtbot, window, tmp_path):
    path = tmp_path / "ts.pt"
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(nn.Sequential(nn.Linear(3, 2), nn.ReLU())), str(path))
    window.open_path(str(path))
    doc = wait_for_document(qtbot, window, str(path))
    assert sf.save_as_filters(doc).split(";;")[0] == sf.TORCHSCRIPT_FILTER
    assert window.edit_flows.push(FillEdit(["0.bias"], 0.75))
    window.actionSave.trigger()  # Ctrl+S: back into the archive, no dialog
    wait_saved(qtbot, window)
    assert not window.isWindowModified()
    loaded = torch.jit.load(str(path))
    assert torch.equal(loaded.state_dict()["0.bias"], torch.full((2,), 0.75))
    assert loaded(torch.ones(1, 3)).shape == (1, 2)
    assert doc.format == TORCHSCRIPT


class WithRope(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.register_buffer("inv_freq", torch.arange(4.0), persistent=False)


def test_live_model_tree_marks_non_persistent_and_save_skips_it(qtbot, window, tmp_path):
    from app.core.model.document import Document
    model = WithRope()
    window.open_document(Document.from_module(model), "rope")
    tree = window.tree_view.model()
    texts = {}
    for row in range(tree.rowCount()):
        index = tree.index(row, 0)
        texts[index.data()] = [tree.index(row, c).data() for c in range(tree.columnCount())]
    assert any("non-persistent" in str(v) for v in texts["inv_freq"])
    out = tmp_path / "rope.pt"
    window.prompts.answer(save_file=(str(out), ""))
    window.actionSaveAs.trigger()
    wait_saved(qtbot, window)
    WithRope().load_state_dict(torch.load(out, weights_only=True), strict=True)
