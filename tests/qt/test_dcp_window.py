"""A torch.distributed.checkpoint folder in the window: dropped, browsed, a sharded tensor shown
whole in the grid, saved back as DCP with Ctrl+S and converted to .pt with Save As."""
from __future__ import annotations

import os

import pytest
from PySide6.QtWidgets import QTableView
import torch

from app.core.formats import load_document
from app.core.formats.save import DCP, SAFETENSORS, TORCH
from app.qt.controller import openable_path
from app.qt.save_flows import DCP_FILTER, SAFETENSORS_FILTER, format_from_choice, save_as_filters
from tests.dcp_make import write_chunked
from tests.helpers.qt import drop, mime_for, tree_rows, wait_for_document


@pytest.fixture
def fsdp_folder(tmp_path):
    g = torch.Generator().manual_seed(4)
    tensors = {"encoder.weight": torch.randn(9, 4, generator=g), "encoder.bias": torch.randn(9, generator=g)}
    folder = write_chunked(tmp_path / "fsdp_ckpt", tensors, ranks=3, values={"step": 250},
                           paths={"encoder.weight": ("encoder", "weight"),
                                  "encoder.bias": ("encoder", "bias")})
    return folder, tensors


def shown(qtbot, window, name):
    assert window.select_name(name)
    qtbot.waitUntil(lambda: window.tensor_view.name == name)
    model = window.findChild(QTableView, "tensorGrid").model()
    return [[model.data(model.index(r, c)) for c in range(model.columnCount())]
            for r in range(model.rowCount())]


def test_a_dropped_dcp_folder_shows_a_sharded_tensor_whole(qtbot, window, fsdp_folder):
    folder, tensors = fsdp_folder
    assert drop(window, mime_for([folder]))
    doc = wait_for_document(qtbot, window, folder)
    assert doc.format == "dcp"
    assert {full for full, _ in tree_rows(window.tree_model)} >= set(tensors)
    cells = shown(qtbot, window, "encoder.weight")  # three chunks, from three rank files
    want = tensors["encoder.weight"]
    assert len(cells) == 9 and len(cells[0]) == 4
    assert [float(x) for row in cells for x in row] == pytest.approx(want.flatten().tolist(), rel=1e-4)
    assert doc.entries == {"step": "int: 250"}


def test_dropping_the_rank_files_opens_their_folder(fsdp_folder):
    folder, _ = fsdp_folder
    files = [os.path.join(folder, n) for n in os.listdir(folder)]
    assert openable_path(files) == os.path.abspath(folder)


def test_ctrl_s_writes_back_dcp_and_save_as_pt_converts(qtbot, window, fsdp_folder, tmp_path):
    folder, tensors = fsdp_folder
    window.open_path(folder)
    wait_for_document(qtbot, window, folder)
    shown(qtbot, window, "encoder.bias")
    window.edit_flows.cast_actions["float16"].trigger()
    window.actionSave.trigger()
    qtbot.waitUntil(lambda: not window.save_flows.is_saving, timeout=20_000)
    back = load_document(folder)
    assert back.format == "dcp" and back.entry("encoder.bias").dtype == torch.float16
    assert back.entries == {"step": "int: 250"}
    out = tmp_path / "merged.pt"
    window.save_flows.ask_save_path = lambda: (str(out), TORCH, None)
    window.actionSaveAs.trigger()
    qtbot.waitUntil(lambda: not window.save_flows.is_saving, timeout=20_000)
    got = torch.load(out, weights_only=True)
    assert torch.equal(got["encoder"]["weight"], tensors["encoder.weight"]) and got["step"] == 250


def test_save_as_offers_dcp_first_for_a_dcp_document(fsdp_folder):
    doc = load_document(fsdp_folder[0])
    assert save_as_filters(doc).split(";;")[0] == DCP_FILTER
    assert format_from_choice("/x/out", DCP_FILTER) == ("/x/out", DCP)
    assert format_from_choice("/x/out.safetensors", DCP_FILTER) == ("/x/out.safetensors", SAFETENSORS)
    assert format_from_choice("/x/out", SAFETENSORS_FILTER)[1] == SAFETENSORS
