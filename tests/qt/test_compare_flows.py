"""File > Compare With...: a reference beside the document, on real files, through the window."""
import numpy as np
import pytest
import torch
from PySide6.QtCore import QModelIndex, QPoint, Qt
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from app.qt.compare_flows import MODE_A, MODE_B, MODE_DIFF
from app.qt.models.tree_model import HEADERS
from tests.helpers.qt import drag_enter, mime_for, tree_rows, wait_for_document

CHANGE = len(HEADERS)


@pytest.fixture
def pair(tmp_path):
    """A document and a reference: one tensor changed a lot, one a little, one equal, one only
    in each, one of another shape."""
    g = torch.Generator().manual_seed(0)
    a = {"enc.0.weight": torch.randn(6, 5, generator=g), "enc.0.bias": torch.randn(6, generator=g),
         "enc.1.weight": torch.randn(4, 6, generator=g), "head.weight": torch.randn(2, 4, generator=g),
         "head.bias": torch.zeros(2), "extra.scale": torch.ones(3)}
    b = {k: v.clone() for k, v in a.items() if k != "extra.scale"}
    b["enc.0.weight"][1, 2] += 1e-3
    b["head.weight"] *= 3
    b["head.bias"] = torch.zeros(5)
    b["only.there"] = torch.ones(1)
    pa, pb = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save(a, pa)
    torch.save(b, pb)
    return str(pa), str(pb), a, b


def compared(qtbot, window, pair):
    pa, pb, a, b = pair
    window.open_path(pa)
    wait_for_document(qtbot, window, pa)
    window.compare_with(pb)
    flows = window.compare_flows
    qtbot.waitUntil(lambda: flows.result is not None, timeout=10_000)
    return flows


def row(window, name, col=0) -> QModelIndex:
    proxy = window.tree_panel.proxy
    return proxy.mapFromSource(window.tree_model.find(name)).siblingAtColumn(col)


def test_compare_fills_a_change_column_with_colours_summed_per_module(qtbot, window, pair):
    flows = compared(qtbot, window, pair)
    assert window.findChild(type(window.actionCompare), "actionCompare") is window.actionCompare
    model = window.tree_view.model()
    assert model.headerData(CHANGE, Qt.Horizontal) == "Change"
    assert row(window, "enc.0.bias", CHANGE).data() == "equal"
    assert row(window, "enc.0.weight", CHANGE).data().endswith("(1 differ)")
    assert row(window, "head.bias", CHANGE).data() == "shape differs"
    assert row(window, "extra.scale", CHANGE).data() == "only here"
    assert row(window, "enc", CHANGE).data().startswith("1/3 differ")
    assert row(window, "head", CHANGE).data().startswith("2/2 differ")
    assert row(window, "enc.0.bias", 0).data(Qt.BackgroundRole) is None
    weak = row(window, "enc.0.weight", 0).data(Qt.BackgroundRole)
    strong = row(window, "head.weight", 0).data(Qt.BackgroundRole)
    assert weak is not None and strong is not None and strong.green() < weak.green()
    assert not flows.toolbar.isHidden() and "1 only there" in flows.label.text()
    flows.close_comparison()
    assert window.tree_model.columnCount() == len(HEADERS) and flows.toolbar.isHidden()


def test_only_changed_filter_and_sort_by_size_of_change(qtbot, window, pair):
    flows = compared(qtbot, window, pair)
    flows.only_changed.setChecked(True)
    names = [n for n, _ in tree_rows(window.tree_view.model())]
    assert "enc.0.bias" not in names and "enc.1.weight" not in names
    assert {"enc.0.weight", "head.weight", "head.bias", "extra.scale"} <= set(names)
    flows.only_changed.setChecked(False)
    qtbot.mouseClick(flows.sort_button, Qt.LeftButton)
    proxy = window.tree_view.model()
    top = [proxy.index(r, 0).data(Qt.UserRole) for r in range(proxy.rowCount())]
    assert top[-1] == "enc"  # head (shape change) and extra (only here) rank above
    enc = proxy.index(top.index("enc"), 0)
    kids = [proxy.index(r, 0, enc).data(Qt.UserRole) for r in range(proxy.rowCount(enc))]
    assert kids[0] == "enc.0"  # the only changed module inside enc comes first
    window.tree_view.header().sectionClicked.emit(CHANGE)  # a click on the header flips it
    top = [proxy.index(r, 0).data(Qt.UserRole) for r in range(proxy.rowCount())]
    assert top[0] == "enc"


def test_grid_shows_a_b_and_difference(qtbot, window, pair):
    flows = compared(qtbot, window, pair)
    _, _, a, b = pair
    assert window.select_name("head.weight")
    grid = window.tensor_view.model
    qtbot.waitUntil(lambda: grid.tensor is not None and torch.equal(grid.tensor, a["head.weight"]))
    flows.set_mode(MODE_B)
    qtbot.waitUntil(lambda: window.tensor_view.name.endswith("[reference]"), timeout=5000)
    assert torch.equal(grid.tensor, b["head.weight"])
    assert float(grid.data(grid.index(0, 0))) == pytest.approx(b["head.weight"][0, 0].item(), rel=1e-6)
    assert not grid.flags(grid.index(0, 0)) & Qt.ItemIsEditable
    flows.set_mode(MODE_DIFF)
    qtbot.waitUntil(lambda: window.tensor_view.name.endswith("[A − B]"), timeout=5000)
    assert torch.equal(grid.tensor, a["head.weight"] - b["head.weight"])
    assert window.tensor_view.heatmap_check.isChecked()
    cell = grid.index(0, 0)
    assert cell.data(Qt.BackgroundRole) is not None  # diverging heatmap of the difference
    qtbot.waitUntil(lambda: window.stats_panel.label.endswith("[A − B]"))
    flows.set_mode(MODE_A)
    qtbot.waitUntil(lambda: window.tensor_view.name == "head.weight", timeout=5000)
    assert grid.flags(grid.index(0, 0)) & Qt.ItemIsEditable


def test_histogram_overlays_the_reference(qtbot, window, pair):
    flows = compared(qtbot, window, pair)
    _, _, a, b = pair
    flows.set_mode(MODE_A)
    assert window.select_name("head.weight")  # not the tensor selected on opening
    qtbot.waitUntil(lambda: flows.overlay.isVisible(), timeout=5000)
    assert window.stats_panel.label == "head.weight"
    x, y = flows.overlay.getData()
    edges = window.stats_panel.histogram.edges
    assert np.allclose(x, edges)
    inside = ((b["head.weight"] >= edges[0]) & (b["head.weight"] <= edges[-1])).sum().item()
    assert y.sum() == inside
    window.select_name("enc")
    qtbot.waitUntil(lambda: not flows.overlay.isVisible())


def test_compare_runs_in_a_worker_and_cancels(qtbot, window, tmp_path):
    big = {"w": torch.zeros(4096, 4096)}
    pa, pb = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save(big, pa)
    big["w"] += 1
    torch.save(big, pb)
    window.open_path(str(pa))
    wait_for_document(qtbot, window, pa)
    flows = window.compare_flows
    task = window.compare_with(str(pb)) or flows._task
    assert flows.is_busy and flows.progress_bar.isVisibleTo(window)
    qtbot.mouseClick(flows.cancel_button, Qt.LeftButton)
    assert not flows.is_busy and not flows.progress_bar.isVisibleTo(window)
    qtbot.waitUntil(lambda: task not in flows._running, timeout=10_000)
    assert flows.result is None and window.tree_model.columnCount() == len(HEADERS)


def test_bad_reference_shows_one_error_and_keeps_the_document(qtbot, window, pair, tmp_path):
    pa = pair[0]
    window.open_path(pa)
    doc = wait_for_document(qtbot, window, pa)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"nonsense")
    window.compare_with(str(bad))
    qtbot.waitUntil(lambda: window.compare_flows.error_box is not None, timeout=10_000)
    box = window.compare_flows.error_box
    assert isinstance(box, QMessageBox) and str(bad) in box.text()
    assert window.controller.document is doc and window.compare_flows.result is None
    box.close()


def test_shift_drop_compares_instead_of_opening(qtbot, window, pair):
    pa, pb, _, _ = pair
    window.open_path(pa)
    doc = wait_for_document(qtbot, window, pa)
    mime = mime_for([pb])
    assert drag_enter(window, mime)
    event = QDropEvent(QPoint(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.ShiftModifier)
    QApplication.sendEvent(window, event)
    qtbot.waitUntil(lambda: window.compare_flows.result is not None, timeout=10_000)
    assert window.controller.document is doc and window.compare_flows.reference_path == pb


def test_opening_another_document_closes_the_comparison(qtbot, window, pair, tmp_path):
    flows = compared(qtbot, window, pair)
    window.controller.undo_stack.setClean()
    window.open_path(pair[1])
    wait_for_document(qtbot, window, pair[1])
    assert flows.result is None and flows.reference is None
    assert window.tree_model.columnCount() == len(HEADERS)


def test_mode_combo_is_used_by_name(qtbot, window, pair):
    flows = compared(qtbot, window, pair)
    combo = window.findChild(type(flows.mode_combo), "compareModeCombo")
    assert combo is flows.mode_combo and combo.count() == 3
    assert MODE_A == 0 and MODE_B == 1


def test_transplant_from_the_reference_is_undoable_and_recorded(qtbot, window, pair):
    flows = compared(qtbot, window, pair)
    pa, pb, a, b = pair
    doc = window.controller.document
    head = doc.tensor("head.weight")
    assert window.select_name("head")
    refused = flows.transplant_selection()
    assert "head.bias: shape [5] in the reference, [2] here" in refused
    assert doc.tensor("head.weight") is head and torch.equal(head, b["head.weight"])
    assert "refused head.bias" in window.statusBar().currentMessage()
    recipe = window.controller.edits.recipe()
    assert recipe["inputs"] == {"ref": pb}
    assert recipe["steps"] == [{"op": "transplant", "from": "ref", "targets": ["head.weight"]}]
    assert "edited since compared" in flows.label.text()
    window.actionUndo.trigger()
    assert torch.equal(head, a["head.weight"])
    window.tree_view.setCurrentIndex(QModelIndex())
    flows.transplant_selection()  # no selection: the whole reference, new tensors included
    assert torch.equal(doc.tensor("only.there"), b["only.there"])
    window.actionUndo.trigger()
    assert "only.there" not in doc.tensors
    window.actionRedo.trigger()
    other = pb.replace("b.pt", "c.pt")
    torch.save({"head.weight": torch.full((2, 4), 7.0)}, other)
    window.compare_with(other)
    qtbot.waitUntil(lambda: flows.reference_path == other, timeout=10_000)
    assert window.select_name("head.weight")
    flows.transplant_selection()
    recipe = window.controller.edits.recipe()
    assert recipe["inputs"] == {"ref": pb, "ref2": other}  # two references, two inputs
    assert recipe["steps"][-1] == {"op": "transplant", "from": "ref2", "targets": ["head.weight"]}


def test_screenshot_of_a_comparison(qtbot, pair, tmp_path, capsys):
    from PySide6.QtGui import QImage

    from app.__main__ import main
    pa, pb, _, _ = pair
    png = tmp_path / "compare.png"
    assert main(["screenshot", pa, "--compare", pb, "--select", "head.weight", "-o", str(png),
                 "--size", "900x600"]) == 0
    image = QImage(str(png))
    assert (image.width(), image.height()) == (900, 600)
    assert main(["screenshot", pa, "--compare", str(tmp_path / "missing.pt"),
                 "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --compare") and "missing.pt" in err[0]
    for w in QApplication.topLevelWidgets():
        if w.objectName() == "mainWindow":
            w.close()


def test_a_live_model_against_a_file(qtbot, window, tmp_path):
    from app.core.model.document import Document
    from tests.checkpoints import tied_lm
    model = tied_lm()
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    sd["body.0.bias"] += 1
    torch.save(sd, tmp_path / "ref.pt")
    window.open_document(Document.from_module(model), "live")
    window.compare_with(str(tmp_path / "ref.pt"))
    flows = window.compare_flows
    qtbot.waitUntil(lambda: flows.result is not None, timeout=10_000)
    assert flows.result.changed == ["body.0.bias"]
    assert "embed.weight" in flows.result.equal and "lm_head.weight" in flows.result.equal
    bias = model.body[0].bias
    assert window.select_name("body")
    flows.transplant_selection()  # the file's values into the live model, in place
    assert model.body[0].bias is bias and torch.equal(bias, sd["body.0.bias"])


def test_interpolate_with_the_reference(qtbot, window, pair):
    flows = compared(qtbot, window, pair)
    pa, pb, a, b = pair
    doc = window.controller.document
    flows.interpolate_spin.setValue(0.25)
    qtbot.mouseClick(flows.interpolate_button, Qt.LeftButton)
    want = (a["head.weight"].double() * 0.75 + b["head.weight"].double() * 0.25).float()
    assert torch.equal(doc.tensor("head.weight"), want)
    assert torch.equal(doc.tensor("head.bias"), a["head.bias"])       # shape differs: left alone
    assert torch.equal(doc.tensor("extra.scale"), a["extra.scale"])   # only here
    recipe = window.controller.edits.recipe()
    assert recipe["inputs"] == {"ref": pb}
    step = recipe["steps"][0]
    assert step["op"] == "merge" and step["weights"] == [0.75, 0.25] and step["inputs"] == ["ref"]
    window.actionUndo.trigger()
    assert torch.equal(doc.tensor("head.weight"), a["head.weight"])


def test_a_result_arriving_after_the_window_closed_is_dropped(qtbot, pair):
    """Background results of the comparison (reference histogram, grid) may arrive after the
    window is gone; they must be dropped, not touch deleted widgets."""
    import shiboken6
    from PySide6.QtCore import QCoreApplication, QEvent, QThreadPool
    from app.qt.main_window import MainWindow
    from tests.qt.driving import PoolBlocked
    from tests.helpers.prompts import FakePrompts
    win = MainWindow(prompts=FakePrompts(save_changes="discard"))
    win.show()
    flows = compared(qtbot, win, pair)
    combo = flows.mode_combo
    blocked = PoolBlocked()  # the tasks the selection starts wait until the window is gone
    try:
        assert win.select_name("head.weight")
        flows.set_mode(MODE_B)
        QApplication.processEvents()
        win.close()
        win.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        assert not shiboken6.isValid(combo)
    finally:
        blocked.release()
    assert QThreadPool.globalInstance().waitForDone(20_000)
    for _ in range(5):  # deliver the finished signals queued for the GUI thread
        QApplication.processEvents()


def test_the_change_column_shows_next_to_the_names_and_goes_with_the_comparison(qtbot, window, pair):
    """The tree dock is narrow: a last column would start off screen, so Change moves right after
    Name while comparing, and the columns are as before once the comparison is closed."""
    flows = compared(qtbot, window, pair)
    header = window.tree_view.header()
    assert header.visualIndex(CHANGE) == 1
    assert header.sectionPosition(CHANGE) == header.sectionSize(0)  # where Type began
    flows.close_comparison()
    assert header.count() == len(HEADERS)
    assert [header.logicalIndex(v) for v in range(header.count())] == list(range(len(HEADERS)))


def test_while_comparing_name_change_shape_dtype_and_elements_fit_the_tree(qtbot, window, pair):
    """The Change column comes in next to Name: the columns up to Elements still fit the
    viewport (Type gives way), as they do without a comparison."""
    from app.qt.models.tree_model import ELEMENTS
    window.resize(1400, 900)
    window.show()
    qtbot.waitExposed(window)
    compared(qtbot, window, pair)
    header, viewport = window.tree_view.header(), window.tree_view.viewport()
    qtbot.waitUntil(lambda: header.sectionViewportPosition(ELEMENTS) > 0)
    for column in (CHANGE, 2, 3, ELEMENTS):  # Change, Shape, Dtype, Elements
        assert not header.isSectionHidden(column)
        right = header.sectionViewportPosition(column) + header.sectionSize(column)
        assert right <= viewport.width(), column


def test_a_squeezed_change_column_keeps_the_start_of_its_text(qtbot, window, pair):
    """Names elide in the middle (weight_ih_l0 / l1); a squeezed Change cell keeps its figure,
    which comes first, and the delegate goes with the comparison."""
    from PySide6.QtWidgets import QStyleOptionViewItem
    flows = compared(qtbot, window, pair)
    view = window.tree_view
    option = QStyleOptionViewItem()
    view.itemDelegateForColumn(CHANGE).initStyleOption(option, row(window, "head.weight", CHANGE))
    assert option.textElideMode == Qt.ElideRight
    assert view.textElideMode() == Qt.ElideMiddle
    flows.close_comparison()
    assert view.itemDelegateForColumn(CHANGE) is None
