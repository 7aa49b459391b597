"""Recipes are untrusted input: read them with bounds and check every field's type and size.

A recipe is at most ``MAX_BYTES`` of JSON from a regular file, with at most ``MAX_STEPS`` steps;
each step has only the keys its op knows (a misspelt ``"mask "`` must not be ignored silently:
the expression would then apply everywhere), text fields have a length limit, numbers are finite
and integers bounded. Every failure is one line that names the step.
"""
from __future__ import annotations

import json
import os
import stat

import torch

from ..errors import UserError
from ..expressions.expr import compile_expr
from ..expressions.index_text import parse_index
from ..compare.merge_ops import MERGE_OPS, check_inputs, check_merge_step
from ..expressions.user_regex import check_replacement, compile_pattern

OPS = ("init", "expr", "fill", "rename", "delete", "cast", "requires_grad", "reset_parameters",
       "tie", "untie", "set_entry", "set_metadata", *MERGE_OPS)  # tie / untie: tie_edits.py
MAX_BYTES = 16 * 2**20
MAX_STEPS = 10_000
MAX_NAME = 4096          # a tensor name or glob
MAX_NAMES = 1_000_000    # entries of a ``targets`` list
MAX_TEXT = 1000          # index text, dtype, function names, argument values

_TARGETED = {"target", "targets"}
KEYS = {
    "init": {"op", "fn", "args", "seed"} | _TARGETED,
    "expr": {"op", "expr", "index", "mask", "ref"} | _TARGETED,  # ref: edits/steps.py
    "fill": {"op", "value", "index"} | _TARGETED,
    "rename": {"op", "from", "to", "targets"},
    "delete": {"op", "target"},
    "cast": {"op", "target", "dtype"},
    "requires_grad": {"op", "value"} | _TARGETED,
    "reset_parameters": {"op", "seed"} | _TARGETED,
    "tie": {"op", "target", "source"},
    "untie": {"op", "target"},
    "set_entry": {"op", "target", "value"},
    "set_metadata": {"op", "key", "value"},
    "transplant": {"op", "from"} | _TARGETED,
    "merge": {"op", "inputs", "weights"} | _TARGETED,
    "task_arithmetic": {"op", "finetuned", "lambdas"} | _TARGETED,
    "lora_merge": {"op", "adapter"},
}


class RecipeError(UserError):
    """A recipe that cannot be read, is not valid, or whose step failed."""


def brief(value, limit: int = 60) -> str:
    """``repr`` of a value from the recipe, cut short: a hostile value never floods a message."""
    try:
        text = repr(value) if not isinstance(value, (list, dict)) else json.dumps(value)[: limit + 1]
    except (ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_recipe_file(path: str) -> object:
    label = f"recipe {os.path.basename(path)}"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise RecipeError(f"recipe {path} does not exist") from None
    except OSError as exc:
        raise RecipeError(f"recipe {path} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise RecipeError(f"recipe {path} is not a regular file")
    if st.st_size > MAX_BYTES:
        raise RecipeError(f"{label} is larger than {MAX_BYTES // 2**20} MiB")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
        text = raw.decode("utf-8")
    except OSError as exc:
        raise RecipeError(f"recipe {path} cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise RecipeError(f"{label} is not UTF-8 text") from None
    if len(raw) > MAX_BYTES:
        raise RecipeError(f"{label} is larger than {MAX_BYTES // 2**20} MiB")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecipeError(f"{label} is not valid JSON: {exc.msg} (line {exc.lineno}, "
                          f"column {exc.colno})") from None
    except RecursionError:
        raise RecipeError(f"{label} is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise RecipeError(f"{label} is not valid JSON: {str(exc).splitlines()[0]}") from None


def check_recipe(data, label: str) -> list[dict]:
    if not isinstance(data, dict):
        raise RecipeError(f'{label} must be a JSON object like {{"version": 1, "steps": [...]}}')
    version = data.get("version")
    if version != 1 or isinstance(version, bool) or not isinstance(version, (int, float)):
        raise RecipeError(f"{label}: version must be 1, not {brief(version)}")
    try:
        check_inputs(data.get("inputs"))
    except UserError as exc:
        raise RecipeError(f"{label}: {exc}") from None
    steps = data.get("steps")
    if not isinstance(steps, list):
        raise RecipeError(f"{label}: \"steps\" must be a list of steps")
    if len(steps) > MAX_STEPS:
        raise RecipeError(f"{label}: more than {MAX_STEPS:,} steps")
    for i, step in enumerate(steps, 1):
        try:
            check_step(step)
        except UserError as exc:
            raise RecipeError(f"{label}: step {i}: {exc}") from None
    return [dict(s) for s in steps]


def _text(step: dict, key: str, what: str, limit: int = MAX_TEXT, required: bool = True) -> str | None:
    if key not in step or (not required and step[key] is None):
        if required:
            raise UserError(f"{step['op']} needs {key!r} ({what})")
        return None
    value = step[key]
    if not isinstance(value, str):
        raise UserError(f"{step['op']}: {key!r} must be {what}, not {brief(value)}")
    if len(value) > limit:
        raise UserError(f"{step['op']}: {key!r} is longer than {limit:,} characters")
    return value


def _number(value, what: str):
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value.bit_length() > 64:
            raise UserError(f"{what} {brief(value)} is too large")
        return value
    if isinstance(value, float):
        return value  # NaN and Inf are values a tensor can hold
    raise UserError(f"{what} must be a number, not {brief(value)}")


def _check_target(step: dict, allow_empty: bool = False) -> None:
    if "targets" in step:
        names = step["targets"]
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
            raise UserError(f"{step['op']}: 'targets' must be a non-empty list of names")
        if len(names) > MAX_NAMES or any(len(n) > MAX_NAME for n in names):
            raise UserError(f"{step['op']}: 'targets' is too long")
        return
    target = _text(step, "target", "a tensor name or glob", MAX_NAME)
    if not target and not allow_empty:
        raise UserError(f"{step['op']}: 'target' must not be empty")


def _check_init(step: dict) -> None:
    from ..edits.initializers import resolve_args
    fn = _text(step, "fn", "a torch.nn.init function such as xavier_uniform_", 100)
    if not (fn.endswith("_") and not fn.startswith("_") and callable(getattr(torch.nn.init, fn, None))):
        raise UserError(f"init: {brief(fn)} is not a function of torch.nn.init ending in _ "
                        "(e.g. xavier_uniform_, normal_, zeros_)")
    args = step.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict) or len(args) > 32:
        raise UserError("init: 'args' must be an object of keyword arguments")
    for k, v in args.items():
        if len(k) > 100:
            raise UserError("init: an argument name is too long")
        values = v.values() if isinstance(v, dict) else [v]
        if isinstance(v, dict) and len(v) > 4:
            raise UserError(f"init: {brief(k)} has too many fields")
        for x in values:
            if isinstance(x, str):
                if len(x) > 100:
                    raise UserError(f"init: the value of {brief(k)} is too long")
            elif x is not None:
                _number(x, f"init: {k}")
    resolve_args(fn, args)
    seed = step.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UserError(f"init: 'seed' must be an integer, not {brief(seed)}")
        if not -2**63 <= seed < 2**64:
            raise UserError(f"init: 'seed' {brief(seed)} is out of range (0 to 2**64 - 1)")


def _check_entry_step(step: dict) -> None:
    """set_entry: an entry's dotted name and a JSON scalar; set_metadata: a key and text or null."""
    from ..edits.entries import check_metadata_key, check_scalar
    op = step["op"]
    if "value" not in step:
        what = ("a number, true/false, text or null" if op == "set_entry"
                else "text, or null to remove the key")
        raise UserError(f"{op} needs 'value' ({what})")
    if op == "set_entry":
        target = _text(step, "target", "an entry's dotted name such as optimizer.param_groups.0.lr",
                       MAX_NAME)
        if not target:
            raise UserError("set_entry: 'target' must not be empty")
        check_scalar(step["value"], "set_entry: 'value'")
        return
    check_metadata_key(_text(step, "key", "a __metadata__ key", MAX_NAME))
    _text(step, "value", "text, or null to remove the key", 10_000, required=False)


def check_step(step) -> None:
    """UserError when ``step`` is not a valid recipe step (checked before any document is opened)."""
    from ..edits.surgery import parse_dtype
    if not isinstance(step, dict):
        raise UserError(f"a step must be a JSON object, not {brief(step)}")
    op = step.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise UserError(f"unknown op {brief(op)} (known: {', '.join(OPS)})")
    unknown = [k for k in step if k not in KEYS[op]]
    if unknown:
        raise UserError(f"{op}: unknown key {brief(unknown[0])} (known: "
                        f"{', '.join(sorted(KEYS[op]))})")
    if op in ("tie", "untie"):
        from ..edits.tie_surgery import check_tie_step
        for key in ("target", "source"):
            if key in step:
                _text(step, key, "an exact tensor name", MAX_NAME)
        return check_tie_step(step)
    if op in ("set_entry", "set_metadata"):
        return _check_entry_step(step)
    if op in MERGE_OPS:
        if "targets" in step or "target" in step:
            _check_target(step)
        return check_merge_step(step)
    if op == "rename":
        compile_pattern(_text(step, "from", "a regular expression"))
        check_replacement(step.get("to", ""))
        if "targets" in step:
            _check_target(step)
        return
    _check_target(step, allow_empty=op == "reset_parameters")
    if op == "cast":
        parse_dtype(_text(step, "dtype", "a dtype name such as bfloat16", 100))
    elif op in ("expr", "fill"):
        index = _text(step, "index", "index text such as [0:2]", 10_000, required=False)
        if index is not None:
            parse_index(index)
        if op == "expr":
            reads = compile_expr(_text(step, "expr", "an expression in w", 4000)).sources()
            mask = _text(step, "mask", "a boolean expression in w", 4000, required=False)
            if mask is not None:
                reads = reads | compile_expr(mask).sources()
            if "ref" in step:
                from ..compare.merge_ops import check_input_name
                check_input_name(step["ref"])
                if "ref" not in reads:
                    raise UserError("expr: 'ref' names the input ref[\"NAME\"] reads, and this "
                                    "expression reads no ref[...]")
        else:
            if "value" not in step:
                raise UserError("fill needs 'value' (a number)")
            value = step["value"]
            if isinstance(value, str):
                if len(value) > 100:
                    raise UserError("fill: 'value' is too long")
                try:
                    float(value)
                except ValueError:
                    try:  # a complex value is written as text ("1+2j"): JSON has no complex
                        complex(value.replace(" ", ""))
                    except ValueError:
                        raise UserError(f"fill: 'value' must be a number, not {brief(value)}") from None
            else:
                _number(value, "fill: 'value'")
    elif op == "requires_grad":
        if not isinstance(step.get("value"), bool):
            raise UserError(f"requires_grad: 'value' must be true or false, not {brief(step.get('value'))}")
    elif op == "init":
        _check_init(step)
    elif op == "reset_parameters" and step.get("seed") is not None:
        seed = step["seed"]
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2 ** 63:
            raise UserError(f"reset_parameters: 'seed' must be a whole number >= 0, not {brief(seed)}")


def load_recipe(source) -> dict:
    """Read (a path) or take (a dict) a recipe and check every step; RecipeError when invalid."""
    if isinstance(source, dict):
        label, data = "recipe", source
    else:
        path = os.fspath(source)
        label = f"recipe {os.path.basename(path)}"
        data = read_recipe_file(path)
    steps = check_recipe(data, label)
    return {**data, "version": 1, "steps": steps}

