"""``main.py apply RECIPE PATH -o OUT``: replay a recipe headless and save OUT atomically.

PATH is only read; OUT is written through ``save_document`` (temporary + ``os.replace``), so a
bad recipe, a failing step or a failed write leaves OUT as it was. Errors are UserErrors: the
CLI prints one ``error:`` line and exits 2.
"""
from __future__ import annotations

import os

from .errors import UserError


def apply_command(args) -> int:
    from .open import open_document
    from .recipe import load_recipe, replay
    from .save import save_document

    out = os.fspath(args.output)
    src = os.fspath(args.path)
    if os.path.exists(out) and os.path.exists(src) and os.path.samefile(out, src):
        raise UserError(f"-o {out} is the input file; apply never modifies its input")
    recipe = load_recipe(args.recipe)  # a bad recipe fails before anything is opened
    from .merge_ops import Inputs, parse_input_option
    overrides = dict(parse_input_option(t) for t in getattr(args, "input", None) or [])
    inputs = Inputs(recipe.get("inputs"), os.path.dirname(os.path.abspath(args.recipe)))
    inputs.override(overrides)
    doc = open_document(src, model=getattr(args, "model", None),
                        model_args=getattr(args, "model_args", None),
                        trust=bool(getattr(args, "trust", False)))
    try:
        replay(recipe, doc, inputs=inputs)
        save_document(doc, out, drop_non_tensor=bool(getattr(args, "drop_non_tensor", False)))
    finally:
        inputs.close()
        doc.close()
    return 0
