"""``apply`` in bounded memory: unchanged tensors stay in the input's mapping, changed ones are
edited in place, a glob step runs one tie group at a time with the same result as ``replay``.
(Peak RSS figures: benchmarks/bench_apply.py.)"""
import torch

from app.core.formats import load_document
from app.core.recipes.recipe import load_recipe, replay
from app.core.recipes.apply_cli import replay_lean


def state():
    g = torch.Generator().manual_seed(0)
    sd = {f"l{i}.weight": torch.randn(64, 64, generator=g) for i in range(4)}
    sd["head.weight"] = sd["l0.weight"]  # tied
    return sd


def test_unchanged_tensors_keep_the_input_mapping(tmp_path):
    torch.save(state(), tmp_path / "in.pt")
    doc = load_document(str(tmp_path / "in.pt"))
    before = {n: (doc.tensor(n), doc.tensor(n).data_ptr()) for n in doc.tensors}
    replay_lean(load_recipe({"version": 1, "steps": [
        {"op": "expr", "target": "l1.weight", "expr": "w * 2"}]}), doc)
    for n, (t, ptr) in before.items():
        assert doc.tensor(n) is t and t.data_ptr() == ptr  # nothing copied or rebound
    assert torch.equal(doc.tensor("l1.weight"), state()["l1.weight"] * 2)
    assert torch.equal(doc.tensor("l2.weight"), state()["l2.weight"])


def test_lazy_tensors_untouched_by_the_recipe_are_never_read(tmp_path):
    from safetensors.torch import save_file
    save_file({k: v for k, v in state().items() if k != "head.weight"}, str(tmp_path / "in.safetensors"))
    doc = load_document(str(tmp_path / "in.safetensors"))
    replay_lean(load_recipe({"version": 1, "steps": [
        {"op": "fill", "target": "l3.weight", "value": 0}]}), doc)
    assert [n for n, e in doc.tensors.items() if e.is_loaded] == ["l3.weight"]


def test_glob_step_one_group_at_a_time_matches_replay(tmp_path):
    torch.save(state(), tmp_path / "in.pt")
    recipe = load_recipe({"version": 1, "steps": [
        {"op": "expr", "target": "*.weight", "expr": "w * 0.5 + torch.rand_like(w)"},
        {"op": "fill", "target": "*", "value": 1.5, "index": "[0]"}]})
    a, b = load_document(str(tmp_path / "in.pt")), load_document(str(tmp_path / "in.pt"))
    torch.manual_seed(3)
    replay(recipe, a)
    torch.manual_seed(3)
    replay_lean(recipe, b)
    for n in a.tensors:  # the tied pair was halved once, not twice; same random stream
        assert torch.equal(a.tensor(n), b.tensor(n)), n
    assert b.tensor("head.weight") is b.tensor("l0.weight")
