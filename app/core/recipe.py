"""Recipes (CONTRACT.md section 3): recorded edits as JSON, checked up front, replayed in order.

Besides the contract's keys, steps may carry ``targets`` (an explicit list of names, taking
precedence over ``target``) and expr steps a ``mask`` (a boolean expression in ``w``); two more
ops exist: ``requires_grad`` (``value``: true/false) and ``reset_parameters`` (``target``: a
module name or glob, ``""`` for the root; live models only); ``tie`` (``target`` becomes
``source``'s very tensor) and ``untie`` (``target`` gets its own copy), exact names only.
"""
from __future__ import annotations

import fnmatch
import json
import os
import re

import torch

from .document import Document
from .edit_base import Edit
from .errors import UserError
from .expr import compile_expr
from .index_text import parse_index
from .surgery import edit_from_step, match_names, parse_dtype

OPS = ("init", "expr", "fill", "rename", "delete", "cast", "requires_grad", "reset_parameters",
       "tie", "untie")  # tie / untie: tie_edits.py


class RecipeError(UserError):
    """A recipe that cannot be read, is not valid, or whose step failed."""


# -- loading and checking ----------------------------------------------------------------------

def load_recipe(source) -> dict:
    """Read (a path) or take (a dict) a recipe and check every step; RecipeError when invalid."""
    if isinstance(source, dict):
        label, data = "recipe", source
    else:
        path = os.fspath(source)
        label = f"recipe {os.path.basename(path)}"
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise RecipeError(f"recipe {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RecipeError(f"recipe {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecipeError(f"{label} is not valid JSON: {exc.msg} (line {exc.lineno}, "
                              f"column {exc.colno})") from None
    if not isinstance(data, dict):
        raise RecipeError(f'{label} must be a JSON object like {{"version": 1, "steps": [...]}}')
    if data.get("version") != 1 or isinstance(data.get("version"), bool):
        raise RecipeError(f"{label}: version must be 1, not {data.get('version')!r}")
    steps = data.get("steps")
    if not isinstance(steps, list):
        raise RecipeError(f"{label}: \"steps\" must be a list of steps")
    for i, step in enumerate(steps, 1):
        try:
            check_step(step)
        except UserError as exc:
            raise RecipeError(f"{label}: step {i}: {exc}") from None
    return {**data, "version": 1, "steps": [dict(s) for s in steps]}


def _need(step: dict, key: str, types, what: str):
    if key not in step:
        raise UserError(f"{step['op']} needs {key!r} ({what})")
    value = step[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        raise UserError(f"{step['op']}: {key!r} must be {what}, not {value!r}")
    return value


def _as_tuple(types) -> tuple:
    return types if isinstance(types, tuple) else (types,)


def _check_target(step: dict, allow_empty: bool = False) -> None:
    if "targets" in step:
        names = step["targets"]
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
            raise UserError(f"{step['op']}: 'targets' must be a non-empty list of names")
        return
    target = _need(step, "target", str, "a tensor name or glob")
    if not target and not allow_empty:
        raise UserError(f"{step['op']}: 'target' must not be empty")


def check_step(step) -> None:
    """UserError when ``step`` is not a valid recipe step (checked before any document is opened)."""
    if not isinstance(step, dict):
        raise UserError(f"a step must be a JSON object, not {step!r}")
    op = step.get("op")
    if op not in OPS:
        raise UserError(f"unknown op {op!r} (known: {', '.join(OPS)})")
    if op in ("tie", "untie"):
        from .tie_edits import check_tie_step
        check_tie_step(step)
        return
    if op == "rename":
        pattern = _need(step, "from", str, "a regular expression")
        if not isinstance(step.get("to", ""), str):
            raise UserError("rename: 'to' must be text")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise UserError(f"rename: bad regular expression {pattern!r}: {exc}") from None
        if "targets" in step:
            _check_target(step)
        return
    _check_target(step, allow_empty=op == "reset_parameters")
    if op == "cast":
        parse_dtype(_need(step, "dtype", str, "a dtype name such as bfloat16"))
    elif op in ("expr", "fill"):
        if step.get("index") is not None:
            parse_index(_need(step, "index", str, "index text such as [0:2]"))
        if op == "expr":
            compile_expr(_need(step, "expr", str, "an expression in w"))
            if step.get("mask") is not None:
                compile_expr(_need(step, "mask", str, "a boolean expression in w"))
        else:
            value = _need(step, "value", (bool, int, float, str), "a number")
            if isinstance(value, str):
                try:
                    float(value)
                except ValueError:
                    raise UserError(f"fill: 'value' must be a number, not {value!r}") from None
    elif op == "requires_grad":
        _need(step, "value", bool, "true or false")
    elif op == "init":
        fn = _need(step, "fn", str, "a torch.nn.init function such as xavier_uniform_")
        if not (fn.endswith("_") and not fn.startswith("_") and callable(getattr(torch.nn.init, fn, None))):
            raise UserError(f"init: {fn!r} is not a function of torch.nn.init ending in _ "
                            "(e.g. xavier_uniform_, normal_, zeros_)")
        if not isinstance(step.get("args", {}), dict):
            raise UserError("init: 'args' must be an object of keyword arguments")
        seed = step.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise UserError(f"init: 'seed' must be an integer, not {seed!r}")


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


def edit_for_step(step: dict, doc: Document) -> Edit:
    """The Edit that performs ``step`` on ``doc`` (targets resolved now; nothing applied yet)."""
    op = step["op"]
    if op in ("rename", "delete", "cast"):
        return edit_from_step(step)
    if op in ("tie", "untie"):
        from .tie_edits import tie_edit_for_step
        return tie_edit_for_step(step, doc)
    glob = None if "targets" in step else step["target"]
    if op == "reset_parameters":
        from .edits import ResetParametersEdit
        seed = step.get("seed")
        if seed is not None:  # a seeded reset (initializers.SeededResetEdit)
            if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2 ** 63:
                raise RecipeError(f"reset_parameters: 'seed' must be a whole number >= 0, not {seed!r}")
            from .initializers import SeededResetEdit
            return SeededResetEdit(_resolve_modules(doc, step), seed, glob=glob)
        return ResetParametersEdit(_resolve_modules(doc, step), glob=glob)
    names = resolve_targets(doc, step)
    if op == "init":
        from .initializers import InitEdit
        return InitEdit(names, step["fn"], dict(step.get("args") or {}), seed=step.get("seed"))
    from .edits import ExprEdit, FillEdit, RequiresGradEdit
    if op == "fill":
        return FillEdit(names, step["value"], index=step.get("index"), glob=glob)
    if op == "expr":
        return ExprEdit(names, step["expr"], index=step.get("index"), mask=step.get("mask"), glob=glob)
    if op == "requires_grad":
        return RequiresGradEdit(names, step["value"], glob=glob)
    raise RecipeError(f"unknown op {op!r} (known: {', '.join(OPS)})")


def replay(recipe, doc: Document, progress=None) -> list[Edit]:
    """Apply every step in order and return the applied edits (for an undo stack).

    A failing step raises RecipeError naming its number and op, after the steps before it have
    been reverted, so ``doc`` is left as it was. ``progress(done, total)`` is called per step.
    """
    recipe = load_recipe(recipe)
    steps = recipe["steps"]
    done: list[Edit] = []
    for i, step in enumerate(steps, 1):
        op = step["op"]
        try:
            edit = edit_for_step(step, doc)
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
