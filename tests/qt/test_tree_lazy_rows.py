"""The tree at many tensors: the view lays out only what it shows.

A wide parent hands its rows out a chunk at a time (more when scrolled to the end, or when a
row further down is selected); a filter pass resets the tree model to the matches and their
ancestors, with no proxy between the view and the model; compare's sort and filter get every
row through the proxy, and the selection survives the switch."""
from __future__ import annotations

import torch
from PySide6.QtCore import QEvent, QModelIndex, QObject, Qt

from app.core.model.document import Document
from app.core.tree_filter import NameIndex, parse_filter
from app.qt.models.shown_rows import CHUNK
from app.qt.models.tree_model import TreeModel
from app.qt.views.tree_panel import ModuleTreePanel

LAYERS = 3 * CHUNK


def deep_sd(layers=LAYERS):
    return {f"model.encoder.layers.{i}.{p}.weight": torch.zeros(2) for i in range(layers)
            for p in ("q", "k")}


def open_panel(qtbot, sd, model=None) -> ModuleTreePanel:
    panel = ModuleTreePanel()
    qtbot.addWidget(panel)
    if model is not None:
        panel.model = model
        model.setParent(panel)
        panel.proxy.setSourceModel(model)
    panel.resize(900, 600)
    panel.show()
    panel.show_root(Document.from_object(sd).root)
    return panel


def with_index(qtbot, panel) -> ModuleTreePanel:
    panel.filter.setFocus()
    panel._build_index()  # what focusing the box does (offscreen windows may not take focus)
    qtbot.waitUntil(lambda: panel._index is not None, timeout=5000)
    return panel


def layers_row(panel):
    return panel.view_index(panel.model.root.find("model.encoder.layers"))


class CountingModel(TreeModel):
    """Counts the view's ``index`` calls: one per row it lays out."""

    indexes = 0

    def index(self, row, column, parent=QModelIndex()):
        self.indexes += 1
        return super().index(row, column, parent)


def test_a_wide_parent_is_laid_out_a_chunk_at_a_time(qtbot):
    panel = open_panel(qtbot, deep_sd())
    view, layers = panel.view, layers_row(panel)
    view.expand(layers)
    assert view.model().rowCount(layers) == CHUNK  # not 768 rows at once
    bar = view.verticalScrollBar()
    bar.setValue(bar.maximum())  # scrolled to the end: the next chunk
    qtbot.waitUntil(lambda: view.model().rowCount(layers) == 2 * CHUNK, timeout=3000)


def test_expand_all_lays_out_only_the_first_chunk_of_a_wide_parent(qtbot):
    panel = open_panel(qtbot, deep_sd(), CountingModel())
    panel.model.indexes = 0
    panel.view.expandAll()
    below, rows = panel.view.model().index(0, 0), 0
    while below.isValid():
        rows, below = rows + 1, panel.view.indexBelow(below)
    assert rows == 3 + CHUNK * 5  # model, encoder, layers; per layer: it, q, weight, k, weight
    assert panel.model.indexes < LAYERS * 3 * 2  # never every row of the tree


def test_after_expand_all_scrolling_to_the_end_fetches_the_next_layers(qtbot):
    """The last rows are then a layer's children (more than a screen of them), not a row of
    the wide parent."""
    layers = CHUNK + 10
    sd = {f"model.encoder.layers.{i}.p{j}": torch.zeros(2) for i in range(layers)
          for j in range(40)}
    sd["model.norm.weight"] = torch.zeros(2)  # a row after the layers, for a second check
    panel = open_panel(qtbot, sd)
    view, wide = panel.view, layers_row(panel)
    view.expandAll()
    bar = view.verticalScrollBar()
    bar.setValue(bar.maximum())
    qtbot.waitUntil(lambda: view.model().rowCount(wide) == layers, timeout=3000)
    panel.show_root(panel.model.root)  # a chunk again; "norm" follows the layers: it
    wide = layers_row(panel)           # shows when their end is on screen
    view.expand(wide)
    assert view.model().rowCount(wide) == CHUNK
    bar.setValue(bar.maximum())
    qtbot.waitUntil(lambda: view.model().rowCount(wide) == layers, timeout=3000)


def test_selecting_a_row_past_the_first_chunk_fetches_down_to_it(qtbot):
    panel = open_panel(qtbot, deep_sd())
    name = f"model.encoder.layers.{2 * CHUNK + 5}.k.weight"
    assert panel.select(name)
    assert panel.current_node().full_name == name
    rows = panel.view.model().rowCount(layers_row(panel))
    assert 2 * CHUNK + 5 < rows <= LAYERS
    assert panel.model.find(f"model.encoder.layers.{LAYERS - 1}").isValid()  # find fetches


def test_a_keystroke_lays_out_a_chunk_of_the_matches_with_no_proxy_in_between(qtbot):
    panel = with_index(qtbot, open_panel(qtbot, deep_sd(), CountingModel()))
    panel.model.indexes = 0
    with qtbot.waitSignal(panel.filterApplied, timeout=3000):
        qtbot.keyClicks(panel.filter, "q.weight")
    panel.view.viewport().repaint()
    assert panel.view.model() is panel.model  # the view asks the model itself
    layers = layers_row(panel)
    assert panel.view.isExpanded(layers) and panel.model.rowCount(layers) == CHUNK
    assert panel.model.indexes < LAYERS * 2  # a chunk, not every matching layer
    layer = panel.model.index(0, 0, layers)
    assert panel.model.rowCount(layer) == 1  # k is not in the model
    assert panel.model.index(0, 0, layer).data(Qt.UserRole) == "model.encoder.layers.0.q"


def test_a_match_past_the_first_chunk_is_shown(qtbot):
    panel = with_index(qtbot, open_panel(qtbot, deep_sd()))
    panel.filter.setText(f"layers.{LAYERS - 1}.k")
    panel.apply_filter()
    layers = layers_row(panel)
    assert panel.model.rowCount(layers) == 1
    assert panel.model.index(0, 0, layers).data(Qt.UserRole) == f"model.encoder.layers.{LAYERS - 1}"


def test_the_filtered_and_fetched_model_is_a_valid_model(qtbot, qtmodeltester):
    root = Document.from_object(deep_sd(CHUNK + 40)).root
    model = TreeModel(root)
    qtmodeltester.check(model)
    index = NameIndex(root)
    model.set_filter(index, index.matches(parse_filter("1*.k")))
    qtmodeltester.check(model)


def test_compare_sort_sees_every_row_and_keeps_the_selection(qtbot):
    panel = open_panel(qtbot, deep_sd())
    selection = panel.view.selectionModel()
    name = "model.encoder.layers.5.q.weight"
    assert panel.select(name)
    panel.proxy.sort(0, Qt.DescendingOrder)
    assert panel.view.model() is panel.proxy and panel.view.selectionModel() is selection
    layers = layers_row(panel)
    assert panel.proxy.rowCount(layers) == LAYERS  # a sort over every layer, not a chunk
    assert panel.proxy.index(0, 0, layers).data() == "99"
    assert panel.current_node().full_name == name
    panel.proxy.sort(-1)
    assert panel.view.model() is panel.model and panel.view.selectionModel() is selection
    assert panel.current_node().full_name == name
    assert panel.model.rowCount(layers_row(panel)) == LAYERS  # rows are never taken back
    panel.show_root(panel.model.root)
    assert panel.model.rowCount(layers_row(panel)) == CHUNK  # lazy again from the next reset


class PaintCounter(QObject):
    def __init__(self):
        super().__init__()
        self.paints = 0

    def eventFilter(self, obj, event):  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Paint:
            self.paints += 1
        return False


def test_a_filter_pass_paints_the_tree_once(qtbot):
    """The tree is laid out in the pass itself: laid out on the first paint, its new scroll
    range asked for another paint of every visible row."""
    panel = with_index(qtbot, open_panel(qtbot, deep_sd()))
    counter = PaintCounter()
    panel.view.viewport().installEventFilter(counter)
    qtbot.wait(50)
    for text in ("q.weight", "k.weight"):
        counter.paints = 0
        panel.filter.setText(text)
        with qtbot.waitSignal(panel.filterApplied, timeout=3000):
            pass
        qtbot.wait(100)
        assert counter.paints == 1, text
