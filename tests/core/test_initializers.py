"""InitEdit equals calling torch.nn.init yourself with the same seeded generator, in place."""
from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from app.core.edits import initializers as inits
from app.core.demo import demo_model
from app.core.model.document import Document
from app.core.errors import UserError
from app.core.edits.initializers import InitEdit, check_applicable, select_tensors, split_applicable


@pytest.fixture
def model():
    return demo_model(seed=1)


@pytest.fixture
def doc(model):
    return Document.from_module(model)


def expected(doc, names, fn, args, seed):
    """Clones of ``names`` initialised by hand, one generator for the whole step, doc order."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    order = list(doc.tensors)
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)  # sparse_'s randperm ignores generator=
        for n in sorted(names, key=order.index):
            t = doc.tensor(n).detach().clone()
            takes = "generator" in inspect.signature(getattr(nn.init, fn)).parameters
            getattr(nn.init, fn)(t, **args, **({"generator": g} if takes else {}))
            out[n] = t
    return out


CASES = [
    ("xavier_uniform_", {"gain": 0.5}, ["rgnet.0.0.0.weight", "rgnet.0.1.2.weight", "head.weight"]),
    ("xavier_normal_", {"gain": 2.0}, ["rgnet.1.weight", "head.weight"]),
    ("kaiming_normal_", {"a": 0.1, "mode": "fan_out", "nonlinearity": "leaky_relu"},
     ["rgnet.0.0.0.weight", "lstm.weight_ih_l0", "conv.conv.weight"]),
    ("kaiming_uniform_", {"mode": "fan_in", "nonlinearity": "relu"}, ["head.weight"]),
    ("trunc_normal_", {"mean": 0.1, "std": 0.02, "a": -0.04, "b": 0.3},
     ["head.weight", "head.bias", "rgnet.0.0.0.bias"]),
    ("orthogonal_", {"gain": 1.5}, ["lstm.weight_hh_l0", "head.weight", "conv.conv.weight"]),
    ("sparse_", {"sparsity": 0.3, "std": 0.05}, ["head.weight", "rgnet.0.0.0.weight"]),
    ("uniform_", {"a": -3.0, "b": -1.0}, ["head.bias", "conv.bn.running_mean", "head.weight"]),
    ("normal_", {"mean": -1.0, "std": 0.02}, ["head.weight"]),
    ("constant_", {"val": -0.25}, ["head.bias", "conv.bn.weight"]),
    ("ones_", {}, ["head.bias"]),
    ("zeros_", {}, ["head.weight"]),
    ("eye_", {}, ["head.weight", "rgnet.1.weight"]),
    ("dirac_", {"groups": 2}, ["conv.conv.weight"]),
]


@pytest.mark.parametrize("fn,args,names", CASES, ids=[c[0] for c in CASES])
def test_equals_nn_init_with_same_generator(doc, model, fn, args, names):
    want = expected(doc, names, fn, args, seed=7)
    before = {n: doc.tensor(n).detach().clone() for n in names}
    objects = {n: doc.tensor(n) for n in names}
    ptrs = {n: t.data_ptr() for n, t in objects.items()}
    edit = InitEdit(names, fn, args, seed=7)
    edit.apply(doc)
    for n in names:
        t = doc.tensor(n)
        assert t is objects[n] and t.data_ptr() == ptrs[n]
        assert torch.equal(t, want[n]), n
    assert set(edit.touched()) == set(names)
    assert edit.memory_cost() == sum(b.numel() * b.element_size() for b in before.values())
    edit.revert(doc)
    for n in names:
        assert torch.equal(doc.tensor(n), before[n])
    edit.apply(doc)  # redo gives the same values again
    for n in names:
        assert torch.equal(doc.tensor(n), want[n])


def test_parameter_identity_and_storage_on_live_module(doc, model):
    w, b = model.head.weight, model.head.bias
    ptr = w.data_ptr()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    InitEdit(["head.weight"], "kaiming_normal_", {"nonlinearity": "relu"}, seed=3).apply(doc)
    assert model.head.weight is w and model.head.bias is b
    assert w.data_ptr() == ptr and isinstance(w, nn.Parameter) and w.requires_grad
    assert any(p is w for group in opt.param_groups for p in group["params"])
    g = torch.Generator().manual_seed(3)
    want = nn.init.kaiming_normal_(torch.empty(10, 64), nonlinearity="relu", generator=g)
    assert torch.equal(w.detach(), want)


def test_sparse_is_reproducible_and_leaves_global_rng_alone(doc):
    state = torch.random.get_rng_state()
    InitEdit(["head.weight"], "sparse_", {"sparsity": 0.5}, seed=9).apply(doc)
    first = doc.tensor("head.weight").clone()
    assert torch.equal(torch.random.get_rng_state(), state)
    InitEdit(["head.weight"], "sparse_", {"sparsity": 0.5}, seed=9).apply(doc)
    assert torch.equal(doc.tensor("head.weight"), first)
    assert (first == 0).sum(dim=0).tolist() == [5] * 64


def test_document_order_not_argument_order(doc):
    names = ["head.weight", "rgnet.1.weight"]
    want = expected(doc, ["rgnet.1.weight", "head.weight"], "normal_", {"std": 0.5}, seed=11)
    InitEdit(names, "normal_", {"std": 0.5}, seed=11).apply(doc)
    for n in names:
        assert torch.equal(doc.tensor(n), want[n])


def test_gain_from_calculate_gain(doc):
    args = {"gain": {"nonlinearity": "leaky_relu", "param": 0.2}}
    edit = InitEdit(["head.weight"], "xavier_uniform_", args, seed=0)
    edit.apply(doc)
    want = expected(doc, ["head.weight"], "xavier_uniform_",
                    {"gain": nn.init.calculate_gain("leaky_relu", 0.2)}, seed=0)
    assert torch.equal(doc.tensor("head.weight"), want["head.weight"])
    assert edit.recipe_step() == {"op": "init", "target": "head.weight", "fn": "xavier_uniform_",
                                  "args": args, "seed": 0}


def test_tied_tensors_initialised_once(doc, model):
    names = ["shared.encoder.2.weight", "shared.decoder.0.weight", "shared.encoder.0.weight"]
    want = expected(doc, ["shared.encoder.0.weight", "shared.encoder.2.weight"],
                    "xavier_uniform_", {}, seed=5)
    edit = InitEdit(names, "xavier_uniform_", {}, seed=5)
    edit.apply(doc)
    assert torch.equal(doc.tensor("shared.encoder.2.weight"), want["shared.encoder.2.weight"])
    assert doc.tensor("shared.decoder.0.weight") is doc.tensor("shared.encoder.2.weight")
    assert torch.equal(doc.tensor("shared.encoder.0.weight"), want["shared.encoder.0.weight"])
    assert set(edit.touched()) == set(names)
    assert edit.memory_cost() == (8 * 4 + 8 * 8) * 4  # the tied weight saved once
    step = edit.recipe_step()
    assert step["targets"] == names and step["target"] == names[0] and step["seed"] == 5


def test_unsupported_targets_raise_and_leave_doc_unchanged(doc):
    before = {n: doc.tensor(n).clone() for n in doc.tensors}
    with pytest.raises(UserError, match=r"eye_ needs a 2-d tensor; head\.bias is 1-d"):
        InitEdit(["head.weight", "head.bias"], "eye_", {}).apply(doc)
    with pytest.raises(UserError, match="floating-point"):
        InitEdit(["conv.bn.num_batches_tracked"], "normal_", {}, seed=1).apply(doc)
    with pytest.raises(UserError, match="no tensor named"):
        InitEdit(["head.weight", "nope"], "zeros_", {}).apply(doc)
    for n, t in before.items():
        assert torch.equal(doc.tensor(n), t)


def test_split_applicable_lists_reasons(doc):
    ok, skipped = split_applicable(doc, ["head.weight", "head.bias", "conv.conv.weight"], "eye_")
    assert ok == ["head.weight"]
    assert skipped == [("head.bias", "eye_ needs a 2-d tensor; head.bias is 1-d"),
                       ("conv.conv.weight", "eye_ needs a 2-d tensor; conv.conv.weight is 4-d")]
    assert "3-d to 5-d" in check_applicable("dirac_", torch.empty(4, 4))
    assert check_applicable("dirac_", torch.empty(4, 2, 3)) is None
    assert "divisible" in check_applicable("dirac_", torch.empty(3, 2, 3), {"groups": 2})
    assert check_applicable("zeros_", torch.tensor(3)) is None  # 0-d, integer: fine
    assert check_applicable("uniform_", torch.tensor(0.5)) is None
    assert "1-d" in check_applicable("sparse_", torch.empty(3), name="x")
    assert "3-d" in check_applicable("sparse_", torch.empty(3, 3, 3), name="x")
    assert "bool" in check_applicable("xavier_uniform_", torch.zeros(2, 2, dtype=torch.bool))
    assert "float16" in check_applicable("orthogonal_", torch.zeros(2, 2, dtype=torch.float16))


@pytest.mark.parametrize("fn,args,match", [
    ("normal_", {"std": -1.0}, "negative"),
    ("uniform_", {"a": 2.0, "b": 1.0}, "a <= b"),
    ("kaiming_normal_", {"mode": "fan_sideways"}, "fan_in, fan_out"),
    ("xavier_uniform_", {"gain": {"nonlinearity": "swish"}}, "unknown nonlinearity"),
    ("xavier_uniform_", {"gain": "big"}, "number"),
    ("xavier_uniform_", {"std": 1.0}, "no argument 'std'"),
    ("constant_", {}, "needs a value for val"),
    ("sparse_", {"sparsity": 1.5}, "between 0 and 1"),
    ("dirac_", {"groups": 1.5}, "whole number"),
    ("no_such_", {}, "unknown initializer"),
])
def test_bad_arguments_are_user_errors(fn, args, match):
    with pytest.raises(UserError, match=match):
        InitEdit(["head.weight"], fn, args)


def test_registry_matches_installed_torch():
    assert set(inits.REGISTRY) == {n for n in dir(nn.init)
                                   if n.endswith("_") and not n.startswith("_")}
    for name, spec in inits.REGISTRY.items():
        params = inspect.signature(getattr(nn.init, name)).parameters
        assert spec.takes_generator == ("generator" in params), name
        assert [a.name for a in spec.args] == [p for p in list(params)[1:] if p != "generator"]
    kn = inits.function("kaiming_normal_")
    assert kn.arg("mode").choices == ("fan_in", "fan_out")
    assert "relu" in kn.arg("nonlinearity").choices and kn.arg("a").type == inits.FLOAT
    assert inits.function("xavier_uniform_").arg("gain").type == inits.GAIN
    assert inits.function("dirac_").arg("groups").type == inits.INT
    assert inits.function("constant_").arg("val").required
    assert not inits.function("eye_").takes_generator
    assert (inits.function("eye_").min_dim, inits.function("eye_").max_dim) == (2, 2)


# -- selection ---------------------------------------------------------------------------------

def test_select_every_linear_under_a_subtree(doc):
    weights = select_tensors(doc, "shared", module_types=["Linear"], which="weights")
    # the shared Linear sits at encoder.2 and decoder.0: its weight is listed once
    assert weights == ["shared.encoder.0.weight", "shared.encoder.2.weight",
                       "shared.decoder.2.weight"]
    biases = select_tensors(doc, "shared.encoder", module_types=["Linear"], which="biases")
    assert biases == ["shared.encoder.0.bias", "shared.encoder.2.bias"]
    assert select_tensors(doc, "shared.decoder", which="weights") == \
        ["shared.decoder.0.weight", "shared.decoder.2.weight"]
    every = select_tensors(doc, "", module_types=["Linear"], which="weights")
    assert len(every) == 8 + 1 + 3 + 1 and "lstm.weight_ih_l0" not in every


def test_select_lstm_and_buffers(doc):
    assert select_tensors(doc, "lstm", which="weights") == ["lstm.weight_ih_l0",
                                                           "lstm.weight_hh_l0"]
    assert select_tensors(doc, "", module_types=["LSTM"], which="biases") == \
        ["lstm.bias_ih_l0", "lstm.bias_hh_l0"]
    conv = select_tensors(doc, "conv", which="all")
    assert conv == ["conv.conv.weight", "conv.bn.weight", "conv.bn.bias", "conv.bn.running_mean",
                    "conv.bn.running_var", "conv.bn.num_batches_tracked"]
    assert select_tensors(doc, "conv", which="parameters") == conv[:3]
    assert select_tensors(doc, "conv", which="all", recursive=False) == []
    assert select_tensors(doc, "conv.bn", module_types=["Conv2d"]) == []
    assert select_tensors(doc, "head.bias", which="weights") == ["head.bias"]
    with pytest.raises(UserError):
        select_tensors(doc, "nowhere")


def test_select_on_state_dict_ignores_module_types(model):
    sd_doc = Document.from_object(model.state_dict())
    got = select_tensors(sd_doc, "rgnet.0", module_types=["Linear"], which="weights")
    assert got == [f"rgnet.0.{i}.{j}.weight" for i in range(4) for j in (0, 2)]
    assert not inits.module_filter_available(sd_doc)


def test_select_then_init_like_net_apply(model, doc):
    """Same result as ``encoder.apply(fn)`` with xavier on every Linear weight, one generator."""
    reference = demo_model(seed=1)
    g = torch.Generator().manual_seed(42)
    seen = set()

    def fn(m):
        if isinstance(m, nn.Linear) and id(m.weight) not in seen:
            seen.add(id(m.weight))
            nn.init.xavier_uniform_(m.weight, generator=g)

    with torch.no_grad():
        reference.rgnet.apply(fn)
    names = select_tensors(doc, "rgnet", module_types=["Linear"], which="weights")
    InitEdit(names, "xavier_uniform_", {}, seed=42).apply(doc)
    # net.apply visits children first (post-order) but each Linear owns one weight, and the
    # visiting order of the Linears is the document order
    for (n, p), (_, q) in zip(model.rgnet.named_parameters(), reference.rgnet.named_parameters()):
        assert torch.equal(p, q), n


def test_failure_midway_rolls_back(doc, monkeypatch):
    names = ["rgnet.1.weight", "head.weight"]
    before = {n: doc.tensor(n).clone() for n in names}
    real = nn.init.normal_
    calls = []

    def flaky(t, *a, **kw):
        calls.append(t)
        if len(calls) == 2:
            raise RuntimeError("device lost")
        return real(t, *a, **kw)

    monkeypatch.setattr(nn.init, "normal_", flaky)
    with pytest.raises(UserError, match="normal_ failed on head.weight: device lost"):
        InitEdit(names, "normal_", {}, seed=1).apply(doc)
    for n in names:
        assert torch.equal(doc.tensor(n), before[n])


def test_lazy_entries_checked_without_loading(tmp_path):
    from app.core.model.tensor_entry import TensorEntry
    loads = []

    def loader():
        loads.append(1)
        return torch.zeros(3)

    doc = Document([TensorEntry.lazy("b", (3,), torch.float32, loader)])
    ok, skipped = split_applicable(doc, ["b"], "xavier_uniform_")
    assert ok == [] and "1-d" in skipped[0][1] and loads == []


def test_undo_releases_the_saved_copy(doc):
    """An undone InitEdit holds no copy of the old values (memory_cost 0, the tensors freed);
    redo saves a new one and a second undo still restores exactly."""
    import gc
    import weakref
    name = "layers.0.weight" if "layers.0.weight" in doc.tensors else next(iter(doc.tensors))
    before = doc.tensor(name).detach().clone()
    edit = InitEdit([name], "normal_", {"std": 0.5}, seed=3)
    edit.apply(doc)
    assert edit.memory_cost() == before.numel() * before.element_size()
    saved = [weakref.ref(t) for t in edit._saved.values()]
    edit.revert(doc)
    gc.collect()
    assert edit.memory_cost() == 0
    assert all(r() is None for r in saved)
    assert torch.equal(doc.tensor(name), before)
    edit.apply(doc)
    assert not torch.equal(doc.tensor(name), before)
    edit.revert(doc)
    assert torch.equal(doc.tensor(name), before)
