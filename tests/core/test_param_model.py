"""Gradients, registration, ties and modes of live models, in the core (no Qt)."""
from __future__ import annotations

import pytest
import torch

from app.core.model.document import Document
from app.core.errors import UserError
from app.core.edits.gradients import ClipGradEdit, ScaleGradEdit, ZeroGradEdit
from app.core.model.grads import all_grad_info, pooled_for
from app.core.edits.registration import (AddTensorEdit, DemoteEdit, PromoteEdit, TrainModeEdit,
                                   parameter_counts, validate_name)
from app.core.edits.tie_surgery import TieEdit, UntieEdit


class Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.body = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()),
                                        torch.nn.LayerNorm(4))
        self.head = torch.nn.Linear(4, 10, bias=False)
        self.register_buffer("steps", torch.zeros(()))

    def forward(self, x):
        return self.head(self.body(self.embed(x)))


def trained(seed=0):
    torch.manual_seed(seed)
    m = Tied()
    loss = m(torch.tensor([1, 2, 3])).square().mean()
    loss.backward()
    return m


def grads(m):
    return {n: None if p.grad is None else p.grad.clone() for n, p in m.named_parameters()}


def test_grad_norms_match_torch_and_pool_like_clip_grad_norm():
    m = trained()
    doc = Document.from_module(m)
    infos = all_grad_info(doc.tensors.values())
    w = m.head.weight
    assert infos["head.weight"].norm == pytest.approx(float(w.grad.norm()))
    assert infos["head.weight"].ratio == pytest.approx(float(w.grad.norm() / w.detach().norm()))
    assert "steps" not in infos
    total = pooled_for(doc.root.tensor_entries(), infos).norm
    expected = float(torch.nn.utils.get_total_norm([p.grad for p in m.parameters()]))
    assert total == pytest.approx(expected, rel=1e-5)
    m.head.weight.grad = None
    assert all_grad_info(doc.tensors.values())["head.weight"].norm is None


def test_nonfinite_gradients_counted():
    m = trained()
    m.head.weight.grad[0, 0] = float("nan")
    m.head.weight.grad[1, 1] = float("inf")
    info = all_grad_info(Document.from_module(m).tensors.values())["head.weight"]
    assert info.nonfinite == 2


def test_zero_scale_clip_undo_and_optimizer_step_after():
    m = trained()
    doc = Document.from_module(m)
    params = {n: p for n, p in m.named_parameters()}
    before = grads(m)
    names = list(params)
    ids = {n: id(p) for n, p in params.items()}
    grad_objects = {n: p.grad for n, p in params.items()}

    clip = ClipGradEdit(names, 0.01)
    clip.apply(doc)
    reference = Tied()
    reference.load_state_dict(m.state_dict())
    for (n, p) in reference.named_parameters():
        p.grad = before[n].clone()
    torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.01)
    for n, p in reference.named_parameters():
        assert torch.equal(params[n].grad, p.grad)
    clip.revert(doc)
    for n, p in params.items():
        assert torch.equal(p.grad, before[n]) and p.grad is grad_objects[n]

    scale = ScaleGradEdit(["head.weight"], 0.5)
    scale.apply(doc)
    assert torch.equal(params["head.weight"].grad, before["head.weight"] * 0.5)
    scale.revert(doc)

    for to_none in (True, False):
        z = ZeroGradEdit(["body.0.0.weight", "body.0.0.bias"], set_to_none=to_none)
        z.apply(doc)
        g = m.body[0][0].weight.grad
        assert (g is None) if to_none else torch.count_nonzero(g) == 0
        z.revert(doc)
        assert m.body[0][0].weight.grad is grad_objects["body.0.0.weight"]
        assert torch.equal(m.body[0][0].weight.grad, before["body.0.0.weight"])

    # the optimizer built before all this still steps on the same parameters
    opt = torch.optim.SGD(m.parameters(), lr=1.0)
    ScaleGradEdit(["head.weight"], 0.0).apply(doc)
    w0 = m.head.weight.detach().clone()
    e0 = m.embed.weight.detach().clone()
    opt.step()
    assert torch.equal(m.head.weight, w0)
    assert torch.equal(m.embed.weight, e0 - before["embed.weight"])
    assert {n: id(p) for n, p in m.named_parameters()} == ids


def test_per_tensor_clip():
    m = trained()
    doc = Document.from_module(m)
    ClipGradEdit(["head.weight", "embed.weight"], 1e-3, per_tensor=True).apply(doc)
    assert float(m.head.weight.grad.norm()) == pytest.approx(1e-3, rel=1e-3)
    assert float(m.embed.weight.grad.norm()) == pytest.approx(1e-3, rel=1e-3)


def torch_message(fn):
    with pytest.raises(KeyError) as info:
        fn()
    return info.value.args[0]


@pytest.mark.parametrize("name", ["", "a.b", "head", "forward", "steps", "weight"])
def test_names_validated_with_torchs_messages(name):
    m = Tied()
    target = m.head if name == "weight" else m
    ours = validate_name(target, name, "parameter")
    theirs_param = torch_message(lambda: target.register_parameter(name, None)) \
        if name not in ("weight",) else "attribute 'weight' already exists"
    assert ours == theirs_param
    buf = validate_name(target, name, "buffer")
    if name != "steps":
        assert buf == torch_message(lambda: target.register_buffer(name, None))
    assert validate_name(m, "scale", "parameter") is None


def test_add_parameter_and_buffer_undo_redo():
    m = Tied()
    doc = Document.from_module(m)
    add = AddTensorEdit("body.1", "gate", (4,), torch.float32, init="ones_")
    add.apply(doc)
    assert isinstance(m.body[1].gate, torch.nn.Parameter) and torch.equal(m.body[1].gate, torch.ones(4))
    assert "body.1.gate" in doc.tensors and doc.node("body.1.gate") is not None
    p = m.body[1].gate
    add.revert(doc)
    assert not hasattr(m.body[1], "gate") and "body.1.gate" not in doc.tensors
    add.apply(doc)
    assert m.body[1].gate is p
    buf = AddTensorEdit("", "mask", (2, 3), torch.bool, kind="buffer", persistent=False)
    buf.apply(doc)
    assert "mask" not in m.state_dict() and dict(m.named_buffers())["mask"].dtype == torch.bool
    with pytest.raises(UserError, match="already exists"):
        AddTensorEdit("", "head", (1,), torch.float32).apply(doc)
    with pytest.raises(UserError, match="floating point"):
        AddTensorEdit("", "ids", (1,), torch.long)
    a = AddTensorEdit("", "w2", (3, 5), torch.float32, init="xavier_uniform_", seed=7)
    a.apply(doc)
    expected = torch.nn.init.xavier_uniform_(torch.zeros(3, 5),
                                             generator=torch.Generator().manual_seed(7))
    assert torch.equal(m.w2, expected)


def test_promote_demote_keep_memory_and_undo():
    m = torch.nn.BatchNorm1d(3)
    doc = Document.from_module(m)
    mean = m.running_mean
    PromoteEdit("running_mean").apply(doc)
    assert isinstance(m.running_mean, torch.nn.Parameter)
    assert m.running_mean.data_ptr() == mean.data_ptr()
    assert doc.entry("running_mean").kind == "parameter"
    with pytest.raises(UserError, match="floating point"):
        PromoteEdit("num_batches_tracked").apply(doc)
    weight = m.weight
    demote = DemoteEdit("weight")
    demote.apply(doc)
    assert "weight" not in dict(m.named_parameters()) and "weight" in dict(m.named_buffers())
    demote.revert(doc)
    assert m.weight is weight and doc.entry("weight").kind == "parameter"


def test_tie_and_untie_live():
    m = Tied()
    doc = Document.from_module(m)
    head = m.head.weight
    assert parameter_counts(m)["named_parameters"] == 6
    with pytest.raises(UserError, match="shapes differ"):
        TieEdit("head.weight", "body.0.0.weight").apply(doc)
    tie = TieEdit("head.weight", "embed.weight")
    tie.apply(doc)
    assert m.head.weight is m.embed.weight
    assert doc.entry("head.weight").shared_with == ["embed.weight"]
    counts = parameter_counts(m)
    assert (counts["named_parameters"], counts["named_parameters_all"]) == (5, 6)
    assert doc.parameter_count() == counts["numel"]
    tie.revert(doc)
    assert m.head.weight is head and not doc.entry("head.weight").shared_with
    tie.apply(doc)
    untie = UntieEdit("head.weight")
    untie.apply(doc)
    assert m.head.weight is not m.embed.weight and torch.equal(m.head.weight, m.embed.weight)
    assert isinstance(m.head.weight, torch.nn.Parameter)
    untie.revert(doc)
    assert m.head.weight is m.embed.weight


def test_untie_refuses_a_shared_module():
    shared = torch.nn.Linear(2, 2)
    m = torch.nn.Sequential(shared, shared)
    doc = Document.from_module(m)
    with pytest.raises(UserError, match="module is used at several places"):
        UntieEdit("1.weight").apply(doc)


def test_tie_in_a_file_saves_one_storage(tmp_path):
    from app.core.loading.open import open_document
    from app.core.formats.save import save_document
    sd = {"embed.weight": torch.randn(10, 4), "head.weight": torch.randn(10, 4)}
    path = tmp_path / "m.pt"
    torch.save(sd, path)
    doc = open_document(str(path))
    TieEdit("head.weight", "embed.weight").apply(doc)
    assert doc.entry("head.weight").shared_with == ["embed.weight"]
    out = tmp_path / "tied.pt"
    save_document(doc, str(out))
    loaded = torch.load(out, weights_only=True)
    assert loaded["head.weight"].data_ptr() == loaded["embed.weight"].data_ptr()
    untie = UntieEdit("head.weight")
    untie.apply(doc)
    save_document(doc, str(tmp_path / "untied.pt"))
    loaded = torch.load(tmp_path / "untied.pt", weights_only=True)
    assert loaded["head.weight"].data_ptr() != loaded["embed.weight"].data_ptr()
    assert torch.equal(loaded["head.weight"], sd["embed.weight"])


def test_train_eval_on_a_subtree_undo():
    m = Tied()
    m.body[1].eval()
    doc = Document.from_module(m)
    edit = TrainModeEdit("body", False)
    edit.apply(doc)
    assert not m.body.training and not m.body[0][0].training and m.training
    edit.revert(doc)
    assert m.body.training and m.body[0][0].training and not m.body[1].training


def test_gradient_edits_refuse_when_there_is_no_gradient():
    m = Tied()
    doc = Document.from_module(m)
    with pytest.raises(UserError, match="run backward"):
        ScaleGradEdit(["head.weight"], 2.0).apply(doc)
    with pytest.raises(UserError, match="only parameters have gradients"):
        ZeroGradEdit(["steps"]).apply(doc)
    with pytest.raises(UserError, match="too many"):
        AddTensorEdit("", "huge", (1 << 20, 1 << 10), torch.float32)


def test_tie_and_untie_are_recipe_steps(tmp_path):
    from app.core.recipes.recipe import load_recipe, replay
    sd = {"embed.weight": torch.randn(10, 4), "head.weight": torch.randn(10, 4)}
    tie = TieEdit("head.weight", "embed.weight")
    recipe = load_recipe({"version": 1, "steps": tie.recipe_steps()})
    assert recipe["steps"] == [{"op": "tie", "target": "head.weight", "source": "embed.weight"}]
    doc = Document.from_object(dict(sd))
    replay(recipe, doc)
    assert doc.tensor("head.weight") is doc.tensor("embed.weight")
    replay({"version": 1, "steps": UntieEdit("head.weight").recipe_steps()}, doc)
    assert doc.tensor("head.weight") is not doc.tensor("embed.weight")
    with pytest.raises(UserError, match="source"):
        load_recipe({"version": 1, "steps": [{"op": "tie", "target": "head.weight"}]})
    with pytest.raises(UserError, match="no tensor named 'nope'"):
        replay({"version": 1, "steps": [{"op": "untie", "target": "nope"}]}, doc)
