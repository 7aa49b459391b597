"""Save and Save As through the window's actions: atomic writes, the modified marker, the
unsaved-changes prompt, entries safetensors cannot hold, sharded output, failures."""
from __future__ import annotations

import os

import torch
from PySide6.QtGui import QKeySequence

from app.core.formats import load_document
from app.core.formats.save import SHARDED
from app.qt import main_window as mw
from app.qt import save_flows as sf
from tests.checkpoints import tied_lm, training_checkpoint
from tests.helpers.qt import wait_for_document


def open_and_cast(qtbot, window, path, name="body.0.bias", dtype="float16", show=False):
    """Open ``path`` and cast one tensor through the Cast menu: a document with unsaved edits."""
    window.open_path(path)
    doc = wait_for_document(qtbot, window, path)
    if show:
        window.show()
        qtbot.waitExposed(window)
    window.select_name(name)
    window.edit_flows.cast_actions[dtype].trigger()
    return doc


def wait_saved(qtbot, window):
    qtbot.waitUntil(lambda: not window.save_flows.is_saving, timeout=20_000)


def test_ctrl_s_saves_over_the_open_mmapped_file(qtbot, window, tied_file):
    path, sd = tied_file
    window.open_path(path)
    doc = wait_for_document(qtbot, window, path)
    window.select_name("embed.weight")
    window.edit_flows.cast_actions["bfloat16"].trigger()
    assert window.isWindowModified() and "Undo Cast" in window.actionUndo.text().replace("&", "")
    assert doc.entry("lm_head.weight").dtype == torch.bfloat16  # its tie follows
    window.show()
    qtbot.waitExposed(window)
    window.actionSave.trigger()
    wait_saved(qtbot, window)
    assert not window.isWindowModified()
    back = torch.load(path, weights_only=True)
    assert list(back) == list(sd)
    assert back["embed.weight"].dtype == torch.bfloat16
    assert back["embed.weight"].untyped_storage().data_ptr() == \
        back["lm_head.weight"].untyped_storage().data_ptr()
    assert torch.equal(back["embed.weight"], sd["embed.weight"].to(torch.bfloat16))
    assert torch.equal(doc.tensor("body.0.weight"), sd["body.0.weight"])  # still readable
    assert [f for f in os.listdir(os.path.dirname(path)) if f.startswith(".")] == []
    window.actionUndo.trigger()  # back to fp32: modified again, relative to the saved file
    assert window.isWindowModified()


def test_save_as_safetensors_asks_before_dropping_entries(qtbot, window, tmp_path):
    src = tmp_path / "ck.pt"
    torch.save(training_checkpoint(tied_lm()), src)
    window.open_path(src)
    wait_for_document(qtbot, window, str(src))
    out = tmp_path / "weights.safetensors"
    asked = []
    window.prompts.answer(save_file=(str(out), ""),
                          drop_entries=lambda keys: asked.append(keys) or False)
    window.actionSaveAs.trigger()
    assert asked and "optimizer.param_groups" in asked[0] and "epoch" in asked[0]
    assert not out.exists() and not window.save_flows.is_saving
    window.prompts.answer(drop_entries=True)
    window.actionSaveAs.trigger()
    wait_saved(qtbot, window)
    saved = load_document(str(out))
    assert list(saved.tensors) == [n for n in window.controller.document.tensors]
    assert window.controller.document.path == str(out)
    assert "weights.safetensors" in window.windowTitle()
    window.prompts.answer(drop_entries=lambda keys: asked.append(keys) or False)
    window.select_name("model.body.0.bias")
    window.edit_flows.cast_actions["float16"].trigger()
    window.actionSave.trigger()  # the same file again: agreed once, not asked each Ctrl+S
    wait_saved(qtbot, window)
    assert len(asked) == 1 and not window.isWindowModified()
    assert load_document(str(out)).entry("model.body.0.bias").dtype == torch.float16


def test_save_as_sharded_with_a_shard_size(qtbot, window, tied_file, tmp_path):
    path, sd = tied_file
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    folder = tmp_path / "shards"
    window.prompts.answer(save_file=(str(folder), sf.SHARDED_FILTER), integer=1)
    window.actionSaveAs.trigger()  # asks the largest shard, in MiB
    wait_saved(qtbot, window)
    assert window.prompts.questions("integer")[0][:2] == ("Shard size", "Largest shard (MiB):")
    assert any(f.endswith(".index.json") for f in os.listdir(folder))
    assert window.save_flows.save_to(str(folder), SHARDED, shard_size=100)  # tiny: many shards
    wait_saved(qtbot, window)
    assert len([f for f in os.listdir(folder) if f.endswith(".safetensors")]) > 1
    back = load_document(str(folder))
    assert list(back.tensors) == list(sd)
    for name, t in sd.items():
        assert torch.equal(back.tensor(name), t)
    assert back.entry("lm_head.weight").shared_with == ["embed.weight"]


def test_failed_save_keeps_the_marker_and_says_why(qtbot, window, tied_file, tmp_path):
    path, _ = tied_file
    open_and_cast(qtbot, window, path)
    target = tmp_path / "missing-folder" / "out.pt"
    window.prompts.answer(save_file=(str(target), ""))
    window.actionSaveAs.trigger()
    wait_saved(qtbot, window)
    assert window.isWindowModified() and not target.exists()
    assert window.save_flows.last_error
    assert "Not saved" in window.statusBar().currentMessage()
    assert window.controller.document.path == path


def test_close_with_unsaved_edits_save_discard_cancel(qtbot, window, tied_file):
    path, sd = tied_file
    open_and_cast(qtbot, window, path, show=True)
    window.prompts.answer(save_changes=mw.CANCEL)
    assert not window.close() and window.isVisible()
    window.prompts.answer(save_changes=mw.SAVE)
    assert window.close()  # saved first, synchronously with respect to the close
    assert torch.load(path, weights_only=True)["body.0.bias"].dtype == torch.float16
    assert not window.isWindowModified()


def test_opening_another_file_with_unsaved_edits_asks(qtbot, window, tied_file, other_file):
    path, _ = tied_file
    open_and_cast(qtbot, window, path)
    window.prompts.answer(save_changes=mw.CANCEL)
    assert not window.open_path(other_file[0])
    assert window.controller.document.path == path
    window.prompts.answer(save_changes=mw.DISCARD)
    assert window.open_path(other_file[0])
    wait_for_document(qtbot, window, other_file[0])
    assert torch.load(path, weights_only=True)["body.0.bias"].dtype == torch.float32


def test_save_runs_in_the_background_and_pauses_editing(qtbot, window, tied_file):
    path, _ = tied_file
    open_and_cast(qtbot, window, path, show=True)
    assert window.actionSave.shortcut() == QKeySequence.Save
    window.actionSave.trigger()
    assert window.save_flows.is_saving  # in the background: editing waits for it
    assert not window.actionEdit.isEnabled() and not window.tree_view.isEnabled()
    wait_saved(qtbot, window)
    assert not window.isWindowModified()
    assert window.actionEdit.isEnabled() and window.tree_view.isEnabled()
