"""The window opens a checkpoint larger than the machine's memory (a sparse 40 GiB safetensors)
and shows its tensors, with memory bounded by what it shows."""
from __future__ import annotations

from PySide6.QtCore import Qt

from tests.core.test_big_safetensors import rss_mib, sparse_safetensors
from tests.helpers.qt import wait_for_document


def test_window_opens_and_shows_a_file_larger_than_memory(qtbot, window, tmp_path):
    path = sparse_safetensors(tmp_path / "big.safetensors")
    before = rss_mib()
    window.open_path(path)
    doc = wait_for_document(qtbot, window, path)
    qtbot.waitUntil(lambda: window.tensor_view.name == "small.weight")
    window.select_name("tail.bias")
    qtbot.waitUntil(lambda: window.tensor_view.name == "tail.bias")
    model = window.tensor_view.grid.model()
    assert model.data(model.index(0, 7) if model.columnCount() > 1 else model.index(7, 0),
                      Qt.DisplayRole).startswith("7")
    assert doc.entry("huge.weight").nbytes == 40 * 1024 ** 3
    assert rss_mib() - before < 512
