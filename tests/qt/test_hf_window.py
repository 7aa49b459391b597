"""A Hugging Face folder in the window: its config shown in the tree, Save As the same layout."""
from __future__ import annotations

import pytest

from app.core.formats import load_document
from app.core.formats.save import HF_FOLDER, save_document
from app.qt.save_flows import HF_FILTER, format_from_choice, save_as_filters
from tests.core.test_hf_folder import model_folder  # noqa: F401  (fixture)
from tests.helpers.qt import drop, mime_for, tree_rows, wait_for_document


def test_a_dropped_model_folder_shows_its_config_in_the_tree(qtbot, window, model_folder):  # noqa: F811
    folder, sd, _ = model_folder
    assert drop(window, mime_for([folder]))
    doc = wait_for_document(qtbot, window, str(folder / "model.safetensors"))
    rows = dict(tree_rows(window.tree_model))
    assert set(sd) <= set(rows) and "config.json" in rows
    assert doc.hf.summary == "llama (LlamaForCausalLM)"


def test_save_as_offers_the_same_layout_first(model_folder, tmp_path):  # noqa: F811
    folder, sd, cfg = model_folder
    doc = load_document(str(folder))
    assert save_as_filters(doc).split(";;")[0] == HF_FILTER
    path, fmt = format_from_choice(str(tmp_path / "out.pt"), HF_FILTER)
    assert (path, fmt) == (str(tmp_path / "out"), HF_FOLDER)
    save_document(doc, path, fmt)
    assert (tmp_path / "out" / "config.json").read_bytes() == cfg
    with pytest.raises(Exception, match="Hugging Face folder"):
        save_document(load_document(str(folder / "model.safetensors")), str(tmp_path / "o2"), HF_FOLDER)
