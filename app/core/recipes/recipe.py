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

from ..model.document import Document
from ..edits import steps
from ..edits.base import Edit
from ..errors import UserError
from ..compare.merge_ops import Inputs
from .check import OPS, RecipeError, check_step, load_recipe  # noqa: F401 - public here
from .registry import REGISTRY, edit_class


# -- building edits ----------------------------------------------------------------------------

def resolve_targets(doc: Document, step: dict) -> list[str]:
    """The tensor names a step acts on: its ``targets`` list, or what ``target`` matches."""
    try:
        return steps.resolve_targets(doc, step)
    except UserError as exc:
        raise RecipeError(str(exc)) from None


def edit_for_step(step: dict, doc: Document, inputs: Inputs | None = None) -> Edit:
    """The Edit that performs ``step`` on ``doc`` (targets resolved now; nothing applied yet):
    ``from_step`` of the class the op registry names (``registry.py``)."""
    op = step["op"]
    if op not in REGISTRY:
        raise RecipeError(f"unknown op {op!r} (known: {', '.join(OPS)})")
    return edit_class(op).from_step(step, doc, inputs if inputs is not None else Inputs())


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
