"""Issue 12 through the window: Compare With file A and transplant a tensor, Compare With file B
and write an expression reading ref[...]: the exported recipe names A ``ref`` and B ``ref2``,
each step the one it read, and ``paramedit apply`` gives what the window shows."""
from __future__ import annotations

import torch
from safetensors.torch import load_file

from app.__main__ import main
from tests.helpers.qt import wait_for_document
from tests.qt.driving import click_ok
from tests.qt.test_expr_ref_window import _expression_dialog
from tests.qt.test_recipe_gui import export_recipe

EXPR = 'w + 0.5 * (ref["enc.weight"] - w)'


def sd(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"enc.weight": torch.randn(4, 3, generator=g), "head.bias": torch.randn(2, generator=g)}


def test_two_references_are_two_inputs_and_apply_replays_the_window(qtbot, window, tmp_path):
    paths = {}
    for name, seed in (("doc", 0), ("a", 1), ("b", 2)):
        paths[name] = tmp_path / f"{name}.pt"
        torch.save(sd(seed), paths[name])
    window.open_path(paths["doc"])
    wait_for_document(qtbot, window, paths["doc"])
    flows = window.compare_flows
    window.compare_with(paths["a"])
    qtbot.waitUntil(lambda: flows.result is not None and flows.reference_path == str(paths["a"]),
                    timeout=10_000)
    assert window.select_name("head.bias")
    assert not flows.transplant_selection()
    window.compare_with(paths["b"])
    qtbot.waitUntil(lambda: flows.result is not None and flows.reference_path == str(paths["b"]),
                    timeout=10_000)
    assert window.select_name("enc.weight")
    dialog = _expression_dialog(qtbot, window, EXPR)
    click_ok(qtbot, dialog)
    doc = window.controller.document
    expected = (sd(0)["enc.weight"] + sd(2)["enc.weight"]) / 2
    qtbot.waitUntil(lambda: torch.allclose(doc.tensor("enc.weight"), expected), timeout=10_000)
    assert torch.equal(doc.tensor("head.bias"), sd(1)["head.bias"])

    recipe_path = tmp_path / "r.recipe.json"
    recipe = export_recipe(window, recipe_path)
    assert recipe["inputs"] == {"ref": str(paths["a"]), "ref2": str(paths["b"])}
    assert recipe["steps"] == [
        {"op": "transplant", "from": "ref", "targets": ["head.bias"]},
        {"op": "expr", "target": "enc.weight", "expr": EXPR, "ref": "ref2"}]
    out = tmp_path / "out.safetensors"
    assert main(["apply", str(recipe_path), str(paths["doc"]), "-o", str(out)]) == 0
    got = load_file(str(out))
    assert torch.equal(got["head.bias"], doc.tensor("head.bias"))
    assert torch.equal(got["enc.weight"], doc.tensor("enc.weight"))
