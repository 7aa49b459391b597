"""The module tree panel: a debounced filter over the name index that never expands the whole
tree, one-line errors, the NaN/Inf scan, middle elision, tooltips and column room."""
from __future__ import annotations

import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from app.core.model.document import Document
from app.qt.models.tree_model import DTYPE, ELEMENTS, NAME, SHAPE, TYPE
from app.qt.views import tree_panel as tp
from app.qt.views.tree_panel import EXPAND_CAP, ModuleTreePanel
from tests.helpers.qt import tree_rows


def panel_with(qtbot, sd, width=900) -> ModuleTreePanel:
    panel = ModuleTreePanel()
    qtbot.addWidget(panel)
    panel.resize(width, 600)
    panel.show()
    panel.show_root(Document.from_object(sd).root)
    assert panel._index is None  # not built while the tree is laid out
    panel.filter.setFocus()      # about to type: built in the background
    panel._build_index()         # (offscreen windows may not take focus)
    qtbot.waitUntil(lambda: panel._index is not None, timeout=5000)
    return panel


def shown_names(panel) -> list[str]:
    return [full for full, _ in tree_rows(panel.proxy)]


def wide_sd(layers=600):
    return {f"model.layers.{i}.{p}.weight": torch.zeros(2) for i in range(layers)
            for p in ("q", "k")}


def test_typing_runs_the_filter_once_after_a_pause(qtbot):
    panel = panel_with(qtbot, wide_sd(20))
    applied = []
    panel.filterApplied.connect(applied.append)
    with qtbot.waitSignal(panel.filterApplied, timeout=3000):
        qtbot.keyClicks(panel.filter, "layers.1*q.weight")
    qtbot.wait(tp.DEBOUNCE_MS + 50)
    assert len(applied) == 1  # seventeen keys, one pass
    names = shown_names(panel)
    assert "model.layers.12.q.weight" in names and "model.layers.2.q.weight" not in names
    assert not any(n.endswith("k.weight") for n in names)


def test_a_filter_expands_only_the_first_matches(qtbot):
    panel = panel_with(qtbot, wide_sd(600))
    expanded = []
    panel.view.expanded.connect(expanded.append)
    panel.filter.setText("weight")
    panel.apply_filter()
    # 1200 matches: their 1800 group ancestors are never all expanded (no expandAll)
    assert 0 < len(expanded) <= 3 * EXPAND_CAP
    assert panel.proxy.matches is not None and len(panel.proxy.matches) == 1200


def test_a_bad_regex_says_one_line_and_keeps_the_tree(qtbot):
    panel = panel_with(qtbot, wide_sd(3))
    before = shown_names(panel)
    panel.filter.setText("re:(unclosed")
    panel.apply_filter()
    message = panel.findChild(QLabel, "treeFilterMessage")
    assert message.isVisible() and "bad regular expression" in message.text()
    assert "\n" not in message.text() and "Traceback" not in message.text()
    assert shown_names(panel) == before
    panel.filter.setText("re:layers\\.1\\.q")
    panel.apply_filter()
    assert not message.isVisible()
    assert shown_names(panel) == ["model", "model.layers", "model.layers.1", "model.layers.1.q",
                                  "model.layers.1.q.weight"]


def test_dtype_and_kind_terms_in_the_box(qtbot):
    sd = {"a.w": torch.zeros(2, dtype=torch.bfloat16), "a.b": torch.zeros(2), "c.w": torch.zeros(2)}
    panel = panel_with(qtbot, sd)
    panel.filter.setText("dtype:bfloat16")
    panel.apply_filter()
    assert shown_names(panel) == ["a", "a.w"]
    assert "dtype:" in panel.filter.toolTip() and "re:" in panel.filter.toolTip()


def test_nonfinite_scan_filters_to_the_two_tensors(qtbot):
    sd = {f"block{i}.lin.weight": torch.randn(4, 4) for i in range(6)}
    sd["block1.lin.weight"][0, 0] = float("nan")
    sd["block4.lin.weight"][3, 3] = float("-inf")
    panel = panel_with(qtbot, sd)
    with qtbot.waitSignal(panel.filterApplied, timeout=5000):
        panel.nonfinite_button.click()
    assert [n for n in shown_names(panel) if n.endswith("weight")] == [
        "block1.lin.weight", "block4.lin.weight"]
    assert "2 tensors with NaN/Inf" in panel.filter_message.text()
    assert not panel.is_scanning and panel.nonfinite_button.isChecked()
    panel.nonfinite_button.click()  # again: everything
    assert len([n for n in shown_names(panel) if n.endswith("weight")]) == 6


def test_nonfinite_scan_cancels(qtbot):
    panel = panel_with(qtbot, {"a": torch.zeros(3)})
    panel.scan_nonfinite()
    assert panel.is_scanning and panel.cancel_button.isVisibleTo(panel)
    panel.cancel_button.click()
    assert not panel.is_scanning and not panel.nonfinite_button.isChecked()
    assert not panel.scan_progress.isVisibleTo(panel)


def test_names_elide_in_the_middle_and_every_cell_has_its_text_as_tooltip(qtbot):
    sd = {"encoder.rnn.weight_ih_l0": torch.zeros(8, 4)}
    panel = panel_with(qtbot, sd)
    assert panel.view.textElideMode() == Qt.ElideMiddle
    source = panel.model.find("encoder.rnn.weight_ih_l0")
    for col in (NAME, TYPE, SHAPE, DTYPE, ELEMENTS):
        index = source.siblingAtColumn(col)
        tip = index.data(Qt.ToolTipRole)
        assert tip and (col == NAME or index.data(Qt.DisplayRole) in tip)
    assert "encoder.rnn.weight_ih_l0" in source.data(Qt.ToolTipRole)


def test_a_narrow_dock_keeps_shape_dtype_and_elements_in_view(qtbot):
    deep = "model.encoder.transformer_layers.0.self_attention_with_a_long_name.rnn"
    sd = {f"{deep}.weight_ih_l{i}": torch.zeros(64, 16) for i in range(3)}
    panel = panel_with(qtbot, sd, width=1200)
    header = panel.view.header()
    wide = {c: header.sectionSize(c) for c in (NAME, TYPE)}
    fm = panel.view.fontMetrics()
    assert header.sectionSize(SHAPE) > fm.horizontalAdvance("64 × 16")   # fitted to tensors
    assert header.sectionSize(DTYPE) > fm.horizontalAdvance("float32")  # below the first screen
    panel.resize(460, 600)
    qtbot.wait(20)
    visible = sum(header.sectionSize(c) for c in range(ELEMENTS + 1))
    assert visible <= panel.view.viewport().width()
    assert header.sectionSize(TYPE) <= wide[TYPE] and header.sectionSize(NAME) >= tp.SQUEEZED[NAME]
    panel.resize(1200, 600)
    qtbot.wait(20)
    assert {c: header.sectionSize(c) for c in (NAME, TYPE)} == wide  # room given back


def test_many_tensors_go_straight_to_the_worker(qtbot):
    from app.qt.views.stats_panel import SYNC_TENSORS, StatsPanel
    panel = StatsPanel()
    qtbot.addWidget(panel)
    tensors = [torch.full((3,), float(i)) for i in range(SYNC_TENSORS + 1)]
    with qtbot.waitSignal(panel.statsReady, timeout=10000) as ready:
        panel.show_tensors("many", tensors)
        assert panel.is_busy and panel.current_stats is None  # nothing computed on this thread
    stats = ready.args[0]
    assert stats.numel == 3 * len(tensors) and stats.max == SYNC_TENSORS and not stats.approximate


def deep_sd(layers):
    """Layers one level deeper than ``wide_sd``: opening expands "model" and "encoder" only."""
    return {f"model.encoder.layers.{i}.{p}.weight": torch.zeros(2) for i in range(layers)
            for p in ("q", "k")}


def shown_row(panel, name):
    """``name``'s index in the view's model (the tree model, or the proxy while comparing)."""
    return panel.view_index(panel.model.root.find(name))


def test_the_first_selection_of_an_opened_tree_never_lays_out_a_wide_parent(qtbot):
    """Opening 2,500 layers selected the first tensor by expanding "layers" (laying out every
    layer row): now it becomes current unrevealed; later selections reveal as before."""
    panel = panel_with(qtbot, deep_sd(tp.WIDE_PARENT + 1))
    layers = shown_row(panel, "model.encoder.layers")
    assert not panel.view.isExpanded(layers)
    assert panel.select("model.encoder.layers.0.q.weight")
    assert panel.current_node().full_name == "model.encoder.layers.0.q.weight"
    assert not panel.view.isExpanded(layers)
    assert panel.select("model.encoder.layers.7.k.weight")  # a later selection is revealed
    assert panel.view.isExpanded(layers)
    assert panel.current_node().full_name == "model.encoder.layers.7.k.weight"


def test_the_first_selection_of_a_narrow_tree_or_a_rebuilt_one_is_revealed(qtbot):
    panel = panel_with(qtbot, deep_sd(20))
    layers = shown_row(panel, "model.encoder.layers")
    panel.view.collapse(layers)
    assert panel.select("model.encoder.layers.0.q.weight") and panel.view.isExpanded(layers)
    wide = Document.from_object(deep_sd(tp.WIDE_PARENT + 1)).root
    panel.show_root(wide, fit=False)  # a structural edit's rebuild: where the user was shows
    assert panel.select("model.encoder.layers.3.q.weight")
    assert panel.view.isExpanded(shown_row(panel, "model.encoder.layers"))
