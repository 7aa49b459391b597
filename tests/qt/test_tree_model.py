"""The module tree model: mirrors the model's structure, counts tied storage once, filters."""
from __future__ import annotations

from collections import defaultdict

import pytest
import torch
from PySide6.QtCore import QModelIndex, Qt

from app.core.demo import demo_model
from app.core.model.document import Document
from app.core.report import human_count
from app.qt.models.tree_model import (BYTES, DTYPE, ELEMENTS, NAME, SHAPE, TYPE, NodeRole,
                                      TreeFilterProxy, TreeModel, name_matches)
from tests.checkpoints import training_checkpoint, tied_lm
from tests.helpers.qt import tree_rows


@pytest.fixture
def demo():
    model = demo_model()
    doc = Document.from_module(model)
    return model, doc, TreeModel(doc.root)


def child_index(model, parent: QModelIndex, name: str) -> QModelIndex:
    for r in range(model.rowCount(parent)):
        index = model.index(r, 0, parent)
        if index.data() == name:
            return index
    raise AssertionError(f"no row {name!r} under {parent.data(Qt.UserRole)!r}")


def module_rows(model, parent: QModelIndex) -> list[str]:
    names = []
    for r in range(model.rowCount(parent)):
        index = model.index(r, 0, parent)
        if index.data(NodeRole).entry is None:
            names.append(index.data())
    return names


def test_model_tester_on_tree_and_filter(qtmodeltester, demo):
    _, _, model = demo
    qtmodeltester.check(model)
    proxy = TreeFilterProxy()
    proxy.setSourceModel(model)
    qtmodeltester.check(proxy)
    proxy.set_pattern("*.weight")
    qtmodeltester.check(proxy)


def test_demo_tree_mirrors_named_children(demo):
    model_, _, model = demo

    def compare(module, parent: QModelIndex, prefix: str):
        children = list(module.named_children())
        assert module_rows(model, parent) == [n for n, _ in children], prefix
        for name, child in children:
            index = child_index(model, parent, name)
            assert index.data(Qt.UserRole) == prefix + name
            assert model.index(index.row(), TYPE, parent).data() == type(child).__name__
            compare(child, index, f"{prefix}{name}.")
    compare(model_, QModelIndex(), "")


def test_every_tensor_row_has_its_full_name_and_metadata(demo):
    model_, doc, model = demo
    rows = {full for full, _ in tree_rows(model)}
    state = model_.state_dict(keep_vars=True)
    assert set(state) <= rows
    for name in state:
        index = model.find(name)
        assert index.data(Qt.UserRole) == name and index.data() == name.rsplit(".", 1)[-1]
        e = doc.entry(name)
        row, parent = index.row(), index.parent()
        assert model.index(row, DTYPE, parent).data() == e.dtype_name
        assert model.index(row, ELEMENTS, parent).data() == human_count(e.numel)
        assert model.index(row, TYPE, parent).data() == ("buffer" if "running" in name
                                                         or "num_batches" in name else "Parameter")
        assert model.index(row, ELEMENTS, parent).data(Qt.TextAlignmentRole) & Qt.AlignRight


def test_tied_linear_shows_at_every_place_with_link_and_aliases(demo):
    model_, _, model = demo
    places = defaultdict(list)
    for name, module in model_.named_modules(remove_duplicate=False):
        places[id(module)].append(name)
    tied = [names for names in places.values() if len(names) > 1]
    assert tied, "the demo model should use one module at two places"
    for names in tied:
        for place in names:
            module_index = model.find(place)
            assert module_index.isValid(), place
            assert not module_index.data(Qt.DecorationRole).isNull()
            others = [n for n in names if n != place]
            assert all(o in module_index.data(Qt.ToolTipRole) for o in others)
            weight = model.find(place + ".weight")
            assert not weight.data(Qt.DecorationRole).isNull()
            tip = weight.data(Qt.ToolTipRole)
            assert all(f"{o}.weight" in tip for o in others)


def test_subtree_totals_count_tied_storage_once(demo):
    model_, _, model = demo
    unique = {id(p): p.numel() for p in model_.parameters()}
    unique.update({id(b): b.numel() for b in model_.buffers()})
    shared = model.find("shared")
    shared_unique = {id(p): p.numel() for p in model_.shared.parameters()}
    assert model.index(shared.row(), ELEMENTS, shared.parent()).data() == \
        human_count(sum(shared_unique.values()))
    assert model.root.totals()[0] == sum(unique.values())
    assert model.index(shared.row(), BYTES, shared.parent()).data().endswith("B")


def test_training_checkpoint_entries_show_their_summary(tmp_path):
    doc = Document.from_object(training_checkpoint(tied_lm()))
    model = TreeModel(doc.root)
    epoch = model.find("epoch")
    assert epoch.isValid()
    assert model.index(epoch.row(), TYPE).data() == "int: 12"
    assert model.index(epoch.row(), SHAPE).data() == ""
    exp_avg = model.find("optimizer.state.0.exp_avg")
    assert exp_avg.data(Qt.UserRole) == "optimizer.state.0.exp_avg"
    assert exp_avg.data() == "exp_avg"


def test_file_ties_are_marked(tmp_path):
    sd = tied_lm().state_dict()
    doc = Document.from_object(sd)
    model = TreeModel(doc.root)
    index = model.find("lm_head.weight")
    assert "embed.weight" in index.data(Qt.ToolTipRole)
    assert not index.data(Qt.DecorationRole).isNull()
    assert model.find("body.0.weight").data(Qt.ToolTipRole).count("Tied") == 0


@pytest.mark.parametrize("name,pattern,expected", [
    ("encoder.0.weight", "weight", True),
    ("encoder.0.weight", "WEIGHT", True),
    ("encoder.0.weight", "bias", False),
    ("encoder.0.weight", "encoder.*.weight", True),
    ("decoder.0.weight", "encoder.*", False),
    ("model.encoder.0.weight", "encoder.*.weight", True),
    ("model.encoder.0.weight", "coder.*.weight", False),
    ("encoder.0.weight", "encoder.[0-3].weight", True),
    ("encoder.0.weight", "  ", True),
])
def test_name_matches(name, pattern, expected):
    assert name_matches(name, pattern) is expected


def test_filter_keeps_matches_and_their_ancestors(demo):
    _, _, model = demo
    proxy = TreeFilterProxy()
    proxy.setSourceModel(model)
    proxy.set_pattern("lstm.weight_*")
    rows = tree_rows(proxy)
    assert [full for full, _ in rows] == ["lstm", "lstm.weight_ih_l0", "lstm.weight_hh_l0"]
    proxy.set_pattern("running_")
    assert [full for full, _ in tree_rows(proxy)] == [
        "conv", "conv.bn", "conv.bn.running_mean", "conv.bn.running_var"]
    proxy.set_pattern("")
    assert len(tree_rows(proxy)) == len(tree_rows(model))


def test_node_changed_refreshes_row_and_ancestors(qtbot, demo):
    _, doc, model = demo
    node = doc.node("head.weight")
    with qtbot.waitSignals([model.dataChanged] * 2):
        node.entry.set_tensor(torch.zeros(3, 3))
        model.node_changed(node)
    head = model.find("head")
    assert model.index(head.row(), ELEMENTS, head.parent()).data() == human_count(9 + 10)
    assert model.find("head.weight").siblingAtColumn(SHAPE).data() == "3 × 3"
    assert model.data(model.find("head"), Qt.DisplayRole) == "head"
    assert NAME == 0


def test_many_changed_tensors_repaint_with_one_signal_per_parent(qtbot):
    """A cast of every tensor used to send one dataChanged per tensor and per ancestor."""
    import torch
    from app.core.model.document import Document
    from app.qt.models.tree_model import TreeModel
    names = [f"enc.{i}.weight" for i in range(200)] + [f"dec.{i}.bias" for i in range(100)]
    doc = Document.from_object({n: torch.zeros(1) for n in names})
    model = TreeModel()
    model.set_root(doc.root)
    spans = []
    model.dataChanged.connect(lambda a, b: spans.append((a, b)))
    model.tensors_changed(names)
    # parents: enc.0 .. enc.199, dec.0 .. dec.99 (one each), enc and dec (one), the root (one)
    assert len(spans) == 300 + 2 + 1
    assert model.modified == set(names)
    top = [s for s in spans if not s[0].parent().isValid()]
    assert len(top) == 1 and (top[0][0].row(), top[0][1].row()) == (0, 1)
