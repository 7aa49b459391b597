"""Initialisation as the tutorials teach it: module-type filters by class name, substring or
regex; "weights" leaves normalisation scales alone unless named; reset_parameters() with a seed."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from app.core.model.document import Document
from app.core.errors import UserError
from app.core.edits.initializers import (SeededResetEdit, match_module_types, norm_weights_left_out,
                                   select_tensors)
from app.core.recipes.recipe import replay


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                                      nn.ConvTranspose2d(4, 2, 3), nn.GroupNorm(1, 2))
        self.head = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 2))


def test_filter_by_class_name_substring_or_regex():
    found = ["Conv2d", "BatchNorm2d", "ConvTranspose2d", "GroupNorm", "Linear", "LayerNorm"]
    assert match_module_types(["Linear"], found) == ["Linear"]
    assert match_module_types(["Conv"], found) == ["Conv2d", "ConvTranspose2d"]  # find('Conv')
    assert match_module_types([r"^Conv\dd$"], found) == ["Conv2d"]
    assert match_module_types(["nn.Linear", "Norm$"], found) == ["Linear", "GroupNorm", "LayerNorm"]
    with pytest.raises(UserError, match="no Embedding module under the model"):
        match_module_types(["Embedding"], found)
    with pytest.raises(UserError, match="nested repetition"):
        match_module_types(["(a+)+$"], found)
    with pytest.raises(UserError, match="nested repetition"):
        match_module_types(["(a|aa)*b"], found)


def test_all_weights_leave_normalisation_scales_unless_named():
    doc = Document.from_module(ConvNet())
    weights = select_tensors(doc, "", which="weights")
    assert weights == ["features.0.weight", "features.3.weight", "head.0.weight", "head.2.weight"]
    assert norm_weights_left_out(doc, "") == ["features.1.weight", "features.4.weight",
                                              "head.1.weight"]
    named = select_tensors(doc, "", which="weights", module_types=["LayerNorm", "Linear"])
    assert named == ["head.0.weight", "head.1.weight", "head.2.weight"]
    assert "features.1.weight" in select_tensors(doc, "", which="parameters")
    assert "features.1.weight" in select_tensors(doc, "", which="weights", include_norm=True)


def test_seeded_reset_parameters_equals_seeding_yourself():
    model, reference = ConvNet(), ConvNet()
    torch.manual_seed(5)
    for m in reference.modules():
        if callable(getattr(m, "reset_parameters", None)):
            m.reset_parameters()
    rng_before = torch.get_rng_state()
    doc = Document.from_module(model)
    edit = SeededResetEdit([""], 5)
    edit.apply(doc)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global RNG is left alone
    for (n, a), (_, b) in zip(model.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, b), n
    step = edit.recipe_step()
    assert step["seed"] == 5 and step["op"] == "reset_parameters"
    edit.revert(doc)
    again = ConvNet()
    replay({"version": 1, "steps": [step]}, Document.from_module(again))
    for (n, a), (_, b) in zip(again.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, b), n
