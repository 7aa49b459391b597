"""Fixtures for GUI tests: real windows (answering from ``FakePrompts``), real checkpoint files.

The helpers that drive them (drag-and-drop events, waiting for a load) are in tests/helpers/qt.py."""
from __future__ import annotations

import os

import pytest
import torch
from PySide6.QtCore import QSettings, QThreadPool

from tests.checkpoints import save_malicious, save_sharded_safetensors, tied_lm
from tests.helpers.prompts import FakePrompts


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory):
    """QSettings (recent files) go to a temporary folder, never the user's."""
    folder = str(tmp_path_factory.mktemp("settings"))
    for fmt in (QSettings.NativeFormat, QSettings.IniFormat):
        QSettings.setPath(fmt, QSettings.UserScope, folder)
    yield


@pytest.fixture
def window(qtbot):
    from app.qt.main_window import MainWindow
    # qtbot closes its widgets before fixtures finish: a test that ends with unsaved edits must
    # not meet a modal Save / Discard / Cancel box. Tests script other answers on win.prompts.
    win = MainWindow(prompts=FakePrompts(save_changes="discard"))
    qtbot.addWidget(win)
    yield win
    win.controller.undo_stack.setClean()  # no save prompt while qtbot closes it
    win.controller.cancel_load()
    QThreadPool.globalInstance().waitForDone(10_000)


@pytest.fixture
def demo_window(window):
    from app.qt.launch import demo_document
    window.open_document(demo_document(), "demo model")
    return window


@pytest.fixture
def tied_file(tmp_path):
    """A torch state_dict with tied embeddings; returns (path, state_dict)."""
    sd = tied_lm().state_dict()
    path = tmp_path / "tied.pt"
    torch.save(sd, path)
    return str(path), sd


@pytest.fixture
def other_file(tmp_path):
    g = torch.Generator().manual_seed(3)
    sd = {"enc.0.weight": torch.randn(6, 5, generator=g), "enc.0.bias": torch.zeros(6),
          "head.weight": torch.randn(2, 6, generator=g)}
    path = tmp_path / "other.pt"
    torch.save(sd, path)
    return str(path), sd


@pytest.fixture
def corrupt_file(tmp_path, tied_file):
    data = open(tied_file[0], "rb").read()
    path = tmp_path / "corrupt.pt"
    path.write_bytes(data[: len(data) // 2])
    return str(path)


@pytest.fixture
def unsafe_file(tmp_path):
    path, marker = tmp_path / "unsafe.pt", tmp_path / "marker"
    save_malicious(str(path), str(marker))
    return str(path), str(marker)


@pytest.fixture
def sharded_folder(tmp_path):
    g = torch.Generator().manual_seed(5)
    tensors = {f"layer.{i}.weight": torch.randn(3, 3, generator=g) for i in range(5)}
    index = save_sharded_safetensors(tensors, str(tmp_path / "sharded"), per_shard=2)
    return os.path.dirname(index), tensors
