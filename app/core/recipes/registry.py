"""The one mapping from a recipe op to the Edit class that performs it.

The window's Export Recipe writes ``edit.to_step()``; ``paramedit apply`` and recipe replay build
``edit_class(op).from_step(step, doc, inputs)``; so a step replayed and exported again is the
step it was (tests/core/test_recipe_roundtrip.py runs every op of ``check.OPS``).
"""
from __future__ import annotations

from importlib import import_module

from ..edits.base import Edit

#: op -> "module:Class" under ``paramedit.core`` (imported on first use)
REGISTRY: dict[str, str] = {
    "init": "edits.initializers:InitEdit",
    "expr": "edits.values:ExprEdit",
    "fill": "edits.values:FillEdit",
    "requires_grad": "edits.values:RequiresGradEdit",
    "reset_parameters": "edits.values:ResetParametersEdit",
    "rename": "edits.surgery:RenameEdit",
    "delete": "edits.surgery:DeleteEdit",
    "cast": "edits.surgery:CastEdit",
    "tie": "edits.tie_surgery:TieEdit",
    "untie": "edits.tie_surgery:UntieEdit",
    "set_entry": "edits.entries:SetEntryEdit",
    "set_metadata": "edits.entries:SetMetadataEdit",
    "transplant": "compare.merge:TransplantEdit",
    "merge": "compare.merge:LinearMergeEdit",
    "task_arithmetic": "compare.merge:TaskArithmeticEdit",
    "lora_merge": "compare.merge_lora:LoraMergeEdit",
}


def edit_class(op: str) -> type[Edit]:
    """The Edit class recipe steps of ``op`` are built by (KeyError for an unknown op)."""
    module, name = REGISTRY[op].split(":")
    return getattr(import_module(f"{__package__.rsplit('.', 1)[0]}.{module}"), name)
