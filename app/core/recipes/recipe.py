"""Recipes (CONTRACT.md section 3): recorded edits as JSON, checked up front, replayed in order.

Besides the contract's keys, steps may carry ``targets`` (an explicit list of names, taking
precedence over ``target``) and expr steps a ``mask`` (a boolean expression in ``w``); two more
ops exist: ``requires_grad`` (``value``: true/false) and ``reset_parameters`` (``target``: a
module name or glob, ``""`` for the root; live models only); ``tie`` (``target`` becomes
``source``'s very tensor) and ``untie`` (``target`` gets its own copy), exact names only;
``set_entry`` (``target``: an entry's dotted name, ``value``: a JSON scalar) and ``set_metadata``
(``key``, ``value``: text, or null to remove the key) (edits/entries.py).
"""
from __future__ import annotations

import fnmatch

from ..model.document import Document
from ..edits.base import Edit
from ..errors import UserError
from ..compare.merge_ops import MERGE_OPS, Inputs, merge_edit_for_step
from .check import OPS, RecipeError, check_step, load_recipe  # noqa: F401 - public here
from ..edits.surgery import edit_from_step, match_names


# -- building edits ----------------------------------------------------------------------------

def resolve_targets(doc: Document, step: dict) -> list[str]:
    """The tensor names a step acts on: its ``targets`` list, or what ``target`` matches."""
    if "targets" in step:
        missing = [n for n in step["targets"] if n not in doc.tensors]
        if missing:
            raise RecipeError(f"there is no tensor named {missing[0]!r}")
        return list(step["targets"])
    names = match_names(doc, step["target"])
    if not names:
        raise RecipeError(f"target {step['target']!r} matches no tensor")
    return names


def _resolve_modules(doc: Document, step: dict) -> list[str]:
    if doc.module is None:
        raise RecipeError("reset_parameters needs a live model; this document is a checkpoint")
    if "targets" in step:
        return list(step["targets"])
    target = step["target"]
    names = [n for n, _m in doc.module.named_modules()]
    if target in names:
        return [target]
    found = [n for n in names if fnmatch.fnmatchcase(n, target)]
    if not found:
        raise RecipeError(f"target {target!r} matches no module")
    resettable = [n for n in found if any(callable(getattr(m, "reset_parameters", None))
                                          for m in doc.module.get_submodule(n).modules())]
    if not resettable:
        raise RecipeError(f"target {target!r} matches no module with a reset_parameters() method")
    return resettable  # a glob skips modules (e.g. activations) that have nothing to reset


def edit_for_step(step: dict, doc: Document, inputs: Inputs | None = None) -> Edit:
    """The Edit that performs ``step`` on ``doc`` (targets resolved now; nothing applied yet)."""
    op = step["op"]
    if op in MERGE_OPS:
        return merge_edit_for_step(step, doc, inputs)
    if op in ("rename", "delete", "cast"):
        return edit_from_step(step)
    if op == "set_entry":
        from ..edits.entries import SetEntryEdit
        return SetEntryEdit(step["target"], step["value"])
    if op == "set_metadata":
        from ..edits.entries import SetMetadataEdit
        return SetMetadataEdit(step["key"], step["value"])
    if op in ("tie", "untie"):
        from ..edits.tie_surgery import tie_edit_for_step
        return tie_edit_for_step(step, doc)
    glob = None if "targets" in step else step["target"]
    if op == "reset_parameters":
        from ..edits.values import ResetParametersEdit
        seed = step.get("seed")
        if seed is not None:  # a seeded reset (initializers.SeededResetEdit)
            if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2 ** 63:
                raise RecipeError(f"reset_parameters: 'seed' must be a whole number >= 0, not {seed!r}")
            from ..edits.initializers import SeededResetEdit
            return SeededResetEdit(_resolve_modules(doc, step), seed, glob=glob)
        return ResetParametersEdit(_resolve_modules(doc, step), glob=glob)
    names = resolve_targets(doc, step)
    if op == "init":
        from ..edits.initializers import InitEdit
        return InitEdit(names, step["fn"], dict(step.get("args") or {}), seed=step.get("seed"))
    from ..edits.values import ExprEdit, FillEdit, RequiresGradEdit
    if op == "fill":
        return FillEdit(names, step["value"], index=step.get("index"), glob=glob)
    if op == "expr":
        return _expr_edit(step, names, glob, inputs)
    if op == "requires_grad":
        return RequiresGradEdit(names, step["value"], glob=glob)
    raise RecipeError(f"unknown op {op!r} (known: {', '.join(OPS)})")


def _expr_edit(step: dict, names: list[str], glob, inputs: Inputs | None) -> Edit:
    """An expr step; one that reads ``ref["NAME"]`` opens the input ``ref``."""
    from ..edits.values import ExprEdit
    from ..expressions.expr import compile_expr
    texts = [step["expr"], *([step["mask"]] if step.get("mask") else [])]
    ref = ref_path = None
    if any("ref" in compile_expr(x).sources() for x in texts):
        inputs = inputs if inputs is not None else Inputs()
        ref, ref_path = inputs.document("ref"), inputs.path("ref")
    return ExprEdit(names, step["expr"], index=step.get("index"), mask=step.get("mask"), glob=glob,
                    ref=ref, ref_path=ref_path)


def replay(recipe, doc: Document, progress=None, inputs: Inputs | None = None) -> list[Edit]:
    """Apply every step in order and return the applied edits (for an undo stack).

    A failing step raises RecipeError naming its number and op, after the steps before it have
    been reverted, so ``doc`` is left as it was. ``progress(done, total)`` is called per step.
    ``inputs`` opens the other checkpoints steps name (default: the recipe's ``"inputs"``).
    """
    recipe = load_recipe(recipe)
    if inputs is None:
        inputs = Inputs(recipe.get("inputs"))
    steps = recipe["steps"]
    done: list[Edit] = []
    for i, step in enumerate(steps, 1):
        op = step["op"]
        try:
            edit = edit_for_step(step, doc, inputs)
            edit.apply(doc)
        except Exception as exc:
            if not isinstance(exc, UserError):
                exc = UserError(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
            for applied in reversed(done):
                try:
                    applied.revert(doc)
                except Exception:  # pragma: no cover - best effort; the original error matters
                    pass
            msg = str(exc).removeprefix(f"{op}: ")
            raise RecipeError(f"step {i} ({op}): {msg}") from None
        done.append(edit)
        if progress is not None:
            progress(i, len(steps))
    return done
