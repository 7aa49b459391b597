"""The tree mirrors named_children for modules and dotted names for state_dicts."""
import torch

from app.core.demo import demo_model
from app.core.model.document import Document
from app.core.model.tree import tree_from_names
from app.core.model.tensor_entry import TensorEntry
from tests.checkpoints import tied_lm


def module_rows(module, prefix=""):
    """(path, class) of every named_children place, recursively, tied modules at each place."""
    rows = []
    for name, child in module.named_children():
        rows.append((prefix + name, type(child).__name__))
        rows += module_rows(child, f"{prefix}{name}.")
    return rows


def tree_rows(node):
    rows = []
    for c in node.children:
        if c.kind == "module":
            rows.append((c.full_name, c.type_name))
            rows += tree_rows(c)
    return rows


def test_demo_tree_mirrors_named_children():
    model = demo_model()
    doc = Document.from_module(model)
    assert tree_rows(doc.root) == module_rows(model)
    node = doc.node("rgnet.0.1.0.bias")
    assert node.entry.tensor() is model.rgnet[0][1][0].bias
    assert doc.node("lstm.weight_ih_l0").entry.shape == (256, 512)
    assert doc.entry("conv.bn.running_mean").kind == "buffer"
    assert doc.entry("conv.bn.weight").kind == "parameter"


def test_shared_linear_at_both_places_counted_once():
    model = demo_model()
    doc = Document.from_module(model)
    a, b = doc.node("shared.encoder.2"), doc.node("shared.decoder.0")
    assert a.type_name == b.type_name == "Linear"
    assert a.children[0].entry.shared_with == ["shared.decoder.0.weight"]
    assert a.children[0].entry.tensor() is b.children[0].entry.tensor()
    shared = doc.node("shared")
    distinct = sum(p.numel() for p in model.shared.parameters())  # parameters() dedups
    assert shared.totals()[0] == distinct
    assert doc.total_numel() == sum(t.numel() for t in {id(t): t for t in
                                    list(model.parameters()) + list(model.buffers())}.values())


def test_module_used_twice_in_one_parent_shows_at_both_places():
    shared = torch.nn.Linear(2, 2)
    net = torch.nn.Sequential(shared, torch.nn.ReLU(), shared)
    doc = Document.from_module(net)
    assert [c.name for c in doc.root.children] == ["0", "1", "2"]  # named_children would skip "2"
    assert doc.entry("2.weight").shared_with == ["0.weight"]
    assert doc.total_numel() == 6


def test_tied_embeddings_state_dict_tree():
    doc = Document.from_object(tied_lm().state_dict())
    assert [c.name for c in doc.root.children] == ["embed", "body", "lm_head"]
    assert doc.node("lm_head.weight").entry.shared_with == ["embed.weight"]
    assert doc.root.totals()[0] == 40 + (16 + 4) + (4 + 4)  # lm_head.weight is embed.weight


def test_dotted_names_group_in_order_and_entry_leaves():
    entries = [TensorEntry.of(n, torch.zeros(2)) for n in ["b.x", "a.y", "b.z", "c"]]
    root = tree_from_names(entries, {"epoch": "int: 3"})
    assert [c.name for c in root.children] == ["b", "a", "c", "epoch"]
    assert [c.name for c in root.children[0].children] == ["x", "z"]
    assert root.children[3].kind == "entry" and root.children[3].summary == "int: 3"
    assert root.children[0].children[1].index_in_parent() == 1
    assert root.children[0].children[1].full_name == "b.z"


def test_training_checkpoint_tree_has_epoch_leaf():
    model = tied_lm()
    doc = Document.from_object({"model": model.state_dict(), "epoch": 3})
    assert [c.name for c in doc.root.children] == ["model", "epoch"]
    assert doc.root.children[1].summary == "int: 3"
