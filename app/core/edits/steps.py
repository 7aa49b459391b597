"""Recipe steps seen from the edits: the names a step acts on, and its input checkpoints.

``resolve_targets`` / ``resolve_modules`` turn a step's ``target`` / ``targets`` into names of
the document (every ``from_step`` uses them, so the window, ``apply`` and Export Recipe agree).

Naming a recipe's input checkpoints: one name per distinct file, and steps that say which.

Steps name inputs by keys of their own: ``transplant`` ``from``, ``merge`` ``inputs``,
``task_arithmetic`` ``finetuned``, ``lora_merge`` ``adapter``, and ``expr`` ``ref`` (the input its
``ref["NAME"]`` reads; ``"ref"`` when the key is absent). In the window every edit calls the
checkpoint it read ``ref`` (the reference of File > Compare With…); a transplant from file A
followed by an expression over file B must not export one ``ref`` for both, so the second file
gets ``ref2`` (then ``ref3``, ...) and its steps are rewritten to name it.
"""
from __future__ import annotations

import fnmatch

from ..errors import UserError
from ..model.document import Document

#: the key of an expr step that names the input ``ref["NAME"]`` reads
EXPR_REF_KEY = "ref"
DEFAULT_REF = "ref"


def step_inputs(step: dict) -> list[str]:
    """The input names ``step`` reads, in order."""
    op = step.get("op")
    if op == "transplant":
        return [step["from"]]
    if op == "merge":
        return list(step["inputs"])
    if op == "task_arithmetic":
        return list(step["finetuned"])
    if op == "lora_merge":
        return [step["adapter"]]
    if op == "expr" and EXPR_REF_KEY in step:
        return [step[EXPR_REF_KEY]]
    return []


def rename_step_inputs(step: dict, mapping: dict[str, str]) -> dict:
    """A copy of ``step`` naming ``mapping[old]`` wherever it named ``old``."""
    if not mapping:
        return step
    step = dict(step)
    op = step.get("op")
    key = {"transplant": "from", "lora_merge": "adapter"}.get(op)
    if key is not None:
        step[key] = mapping.get(step[key], step[key])
    elif op in ("merge", "task_arithmetic"):
        key = "inputs" if op == "merge" else "finetuned"
        step[key] = [mapping.get(n, n) for n in step[key]]
    elif op == "expr" and step.get(EXPR_REF_KEY, DEFAULT_REF) in mapping:
        new = mapping[step.get(EXPR_REF_KEY, DEFAULT_REF)]
        if new == DEFAULT_REF:
            step.pop(EXPR_REF_KEY, None)
        else:
            step[EXPR_REF_KEY] = new
    return step


def _fresh(base: str, used: dict[str, str]) -> str:
    base = base.rstrip("0123456789") or "input"
    n = 2
    while f"{base}{n}" in used:
        n += 1
    return f"{base}{n}"


def name_inputs(groups: list[tuple[list[dict], dict[str, str]]]) -> tuple[list[dict], dict[str, str]]:
    """The steps of every group, in order, and the recipe's ``"inputs"``.

    Each group is one edit's steps and the inputs it read (``{name the steps use: path}``). A name
    already given to another path is replaced by a fresh one (``ref`` -> ``ref2``), or by the name
    that path already has, so each distinct path is one input and each step names its own.
    """
    used: dict[str, str] = {}      # recipe input name -> path
    steps: list[dict] = []
    for group_steps, inputs in groups:
        mapping: dict[str, str] = {}
        for name, path in inputs.items():
            if used.get(name, path) == path:
                used[name] = path
                continue
            same = [n for n, p in used.items() if p == path and n.rstrip("0123456789") ==
                    name.rstrip("0123456789")]
            mapping[name] = same[0] if same else _fresh(name, used)
            used[mapping[name]] = path
        steps.extend(rename_step_inputs(s, mapping) for s in group_steps)
    return steps, used


# -- targets ---------------------------------------------------------------------------------------

def glob_of(step: dict) -> str | None:
    """The step's ``target`` when it is what the edit records (no explicit ``targets`` list)."""
    return None if "targets" in step else step.get("target")


def resolve_targets(doc: Document, step: dict) -> list[str]:
    """The tensor names a step acts on: its ``targets`` list, or what ``target`` matches."""
    if "targets" in step:
        missing = [n for n in step["targets"] if n not in doc.tensors]
        if missing:
            raise UserError(f"there is no tensor named {missing[0]!r}")
        return list(step["targets"])
    target = step["target"]
    names = [target] if target in doc.tensors else [
        n for n in doc.tensors if fnmatch.fnmatchcase(n, target)]
    if not names:
        raise UserError(f"target {target!r} matches no tensor")
    return names


def resolve_modules(doc: Document, step: dict) -> list[str]:
    """The module names a ``reset_parameters`` step acts on (a glob skips modules that have
    nothing to reset, e.g. activations)."""
    if doc.module is None:
        raise UserError("reset_parameters needs a live model; this document is a checkpoint")
    if "targets" in step:
        return list(step["targets"])
    target = step["target"]
    names = [n for n, _m in doc.module.named_modules()]
    if target in names:
        return [target]
    found = [n for n in names if fnmatch.fnmatchcase(n, target)]
    if not found:
        raise UserError(f"target {target!r} matches no module")
    resettable = [n for n in found if any(callable(getattr(m, "reset_parameters", None))
                                          for m in doc.module.get_submodule(n).modules())]
    if not resettable:
        raise UserError(f"target {target!r} matches no module with a reset_parameters() method")
    return resettable
