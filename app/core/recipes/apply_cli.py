"""``main.py apply RECIPE PATH -o OUT``: replay a recipe headless and save OUT atomically.

PATH is only read; OUT is written through ``save_document`` (temporary + ``os.replace``), so a
bad recipe, a failing step or a failed write leaves OUT as it was. Errors are UserErrors: the
CLI prints one ``error:`` line and exits 2.
"""
from __future__ import annotations

import os
from contextlib import ExitStack

from ..errors import UserError
from ..model import file_lease


def apply_command(args) -> int:
    from ..loading.open import open_document
    from .recipe import load_recipe

    out = os.fspath(args.output)
    src = os.fspath(args.path)
    if os.path.exists(out) and os.path.exists(src) and os.path.samefile(out, src):
        raise UserError(f"-o {out} is the input file; apply never modifies its input")
    recipe = load_recipe(args.recipe)  # a bad recipe fails before anything is opened
    from ..compare.merge_ops import Inputs, parse_input_option
    overrides = dict(parse_input_option(t) for t in getattr(args, "input", None) or [])
    inputs = Inputs(recipe.get("inputs"), os.path.dirname(os.path.abspath(args.recipe)))
    inputs.override(overrides)
    doc = open_document(src, model=getattr(args, "model", None),
                        model_args=getattr(args, "model_args", None),
                        trust=bool(getattr(args, "trust", False)))
    try:
        # a rewrite of the input meanwhile waits (its lease), and the save then refuses it
        with file_lease.leased(doc), file_lease.reading():
            replay_lean(recipe, doc, inputs)
            _save(doc, out, args)
    finally:
        inputs.close()
        doc.close()
    return 0


def _save(doc, out: str, args) -> None:
    from ..formats.save import WouldDropEntries, save_document
    try:
        save_document(doc, out, drop_non_tensor=bool(getattr(args, "drop_non_tensor", False)))
    except WouldDropEntries as exc:
        raise UserError(f"{out}: safetensors holds only tensors; saving would lose "
                        f"{_listing(exc.keys)}. Pass --drop-entries to save without them, "
                        "or write .pt to keep them") from None


def _listing(keys: list[str], most: int = 8) -> str:
    shown = ", ".join(keys[:most])
    return shown + (f" and {len(keys) - most} more" if len(keys) > most else "")


def replay_lean(recipe: dict, doc, inputs=None) -> None:
    """``recipe.replay`` for a document that is thrown away on failure, in bounded memory.

    Nothing is undone headless, so no edit is kept (its saved old values go at once), and a value
    step over several tensors runs one tie group at a time: the memory a step needs is one
    tensor's old and new values, beside what the recipe changes. Unchanged tensors stay mapped.
    """
    from .recipe import RecipeError, edit_for_step, resolve_targets
    batch: ExitStack | None = None  # open over a run of set_entry / set_metadata steps
    try:
        for i, step in enumerate(recipe["steps"], 1):
            op = step["op"]
            if op in _SCALAR_OPS and batch is None:  # one tree rebuild for the run, not one a step
                batch = ExitStack()
                batch.enter_context(doc.batch())
            elif op not in _SCALAR_OPS and batch is not None:
                batch, run = None, batch
                run.close()
            try:
                for part in _parts(step, doc, resolve_targets):
                    edit_for_step(part, doc, inputs).apply(doc)
            except Exception as exc:
                if isinstance(exc, UserError):
                    msg = str(exc)
                else:
                    first = str(exc).strip().splitlines()
                    msg = f"{type(exc).__name__}: {first[0] if first else ''}"
                raise RecipeError(f"step {i} ({op}): {msg.removeprefix(f'{op}: ')}") from None
    finally:
        if batch is not None:
            batch.close()


#: steps that change one plain value: no later step needs the tree rebuilt after each
_SCALAR_OPS = ("set_entry", "set_metadata")


def _parts(step: dict, doc, resolve_targets):
    """``step`` itself, or for expr / fill (no state shared between tensors) one step per tie
    group of the tensors it matches, in document order."""
    if step["op"] not in ("expr", "fill"):
        yield step
        return
    names = resolve_targets(doc, step)
    chosen, done = set(names), set()
    for n in names:
        if n in done:
            continue
        group = [n] + [a for a in doc.entry(n).shared_with if a in chosen]
        done.update(group)
        part = {k: v for k, v in step.items() if k not in ("target", "targets")}
        yield {**part, "target": group[0], "targets": group}
