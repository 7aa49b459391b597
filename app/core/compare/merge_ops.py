"""Recipe ops over other checkpoints (inputs): transplant, merge, task_arithmetic, lora_merge.

A recipe names its inputs once, ``"inputs": {"ref": "base.safetensors", "lora": "adapter/"}``
(relative paths are taken from the recipe's folder); ``apply --input ref=PATH`` overrides one.

```json
{"op": "transplant", "from": "ref", "targets": ["head.weight"]}      // or "target": a glob
{"op": "merge", "inputs": ["ref"], "weights": [0.5, 0.5], "target": "*"}
{"op": "task_arithmetic", "finetuned": ["ft"], "lambdas": [0.7], "target": "*"}
{"op": "lora_merge", "adapter": "lora"}
```
"""
from __future__ import annotations

import fnmatch
import math
import os

from ..model.document import Document
from ..edits.base import Edit
from ..errors import UserError

MERGE_OPS = ("transplant", "merge", "task_arithmetic", "lora_merge")
NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def check_input_name(name) -> str:
    if not isinstance(name, str) or not name or not set(name) <= NAME_OK or len(name) > 64:
        raise UserError(f"input names are letters, digits, _ and -, not {name!r}")
    return name


def check_inputs(inputs) -> dict[str, str]:
    if inputs is None:
        return {}
    if not isinstance(inputs, dict) or not all(isinstance(v, str) and v for v in inputs.values()):
        raise UserError('"inputs" must be an object of names and paths, like {"ref": "base.pt"}')
    for k in inputs:
        check_input_name(k)
    return dict(inputs)


def parse_input_option(text: str) -> tuple[str, str]:
    """``--input NAME=PATH``."""
    name, eq, path = text.partition("=")
    if not eq or not path:
        raise UserError(f"--input {text!r}: expected NAME=PATH, e.g. ref=base.safetensors")
    return check_input_name(name), path


def _numbers(step: dict, key: str, n: int | None) -> list[float]:
    values = step.get(key)
    if not isinstance(values, list) or not values or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in values):
        raise UserError(f"{step['op']}: {key!r} must be a non-empty list of numbers")
    if n is not None and len(values) != n:
        raise UserError(f"{step['op']}: {key!r} needs {n} numbers, not {len(values)}")
    return [float(v) for v in values]


def _names(step: dict, key: str) -> list[str]:
    names = step.get(key)
    if not isinstance(names, list) or not names:
        raise UserError(f"{step['op']}: {key!r} must be a non-empty list of input names")
    return [check_input_name(n) for n in names]


def _check_target(step: dict, required: bool) -> None:
    if "targets" in step:
        t = step["targets"]
        if not (isinstance(t, list) and t and all(isinstance(n, str) for n in t)):
            raise UserError(f"{step['op']}: 'targets' must be a non-empty list of names")
    elif "target" in step or required:
        if not isinstance(step.get("target"), str) or not step["target"]:
            raise UserError(f"{step['op']}: 'target' must be a tensor name or glob")


def check_merge_step(step: dict) -> None:
    op = step["op"]
    if op == "transplant":
        check_input_name(step.get("from"))
        _check_target(step, required=True)
    elif op == "merge":
        k = len(_names(step, "inputs"))
        _numbers(step, "weights", k + 1)
        _check_target(step, required=False)
    elif op == "task_arithmetic":
        k = len(_names(step, "finetuned"))
        _numbers(step, "lambdas", k)
        _check_target(step, required=False)
    elif op == "lora_merge":
        check_input_name(step.get("adapter"))


class Inputs:
    """Input documents by name, opened on first use (LoRA adapters with their config)."""

    def __init__(self, paths: dict[str, str] | None = None, folder: str | None = None):
        self.paths = {k: (v if os.path.isabs(v) or folder is None or not os.path.exists(
            os.path.join(folder, v)) else os.path.join(folder, v)) for k, v in (paths or {}).items()}
        self._docs: dict[str, Document] = {}
        self._adapters: dict[str, tuple[Document, dict]] = {}

    def override(self, overrides: dict[str, str]) -> "Inputs":
        self.paths.update(overrides)
        return self

    def path(self, name: str) -> str:
        if name not in self.paths:
            raise UserError(f"no input named {name!r}: list it in the recipe's \"inputs\" "
                            f"or give --input {name}=PATH")
        return self.paths[name]

    def document(self, name: str) -> Document:
        if name not in self._docs:
            from ..formats import load_document
            self._docs[name] = load_document(self.path(name))
        return self._docs[name]

    def adapter(self, name: str) -> tuple[Document, dict]:
        if name not in self._adapters:
            from .merge_lora import open_adapter
            self._adapters[name] = open_adapter(self.path(name))
        return self._adapters[name]

    def close(self) -> None:
        for d in [*self._docs.values(), *(a for a, _c in self._adapters.values())]:
            d.close()
        self._docs.clear()
        self._adapters.clear()


def _targets(doc_names: list[str], step: dict, what: str) -> list[str] | None:
    if "targets" in step:
        missing = [n for n in step["targets"] if n not in doc_names]
        if missing:
            raise UserError(f"{what} has no tensor named {missing[0]!r}")
        return list(step["targets"])
    target = step.get("target")
    if target is None or target == "*":
        return None
    found = [n for n in doc_names if n == target or fnmatch.fnmatchcase(n, target)]
    if not found:
        raise UserError(f"target {target!r} matches no tensor of {what}")
    return found


def _glob(step: dict) -> str | None:
    return None if "targets" in step else step.get("target")


def merge_edit_for_step(step: dict, doc: Document, inputs: Inputs | None) -> Edit:
    from .merge import LinearMergeEdit, TaskArithmeticEdit, TransplantEdit
    if inputs is None:
        inputs = Inputs()
    op = step["op"]
    if op == "transplant":
        src = inputs.document(step["from"])
        names = _targets(src.names(), step, f"input {step['from']!r}")
        names = src.names() if names is None else names
        glob = step.get("target") if "targets" not in step else None
        return TransplantEdit(src, names, step["from"], inputs.path(step["from"]), glob=glob)
    if op == "merge":
        others = {k: inputs.document(k) for k in step["inputs"]}
        names = _targets(doc.names(), step, "the document")
        return LinearMergeEdit(others, step["weights"], names, doc,
                               paths={k: inputs.path(k) for k in others}, glob=_glob(step))
    if op == "task_arithmetic":
        fts = {k: inputs.document(k) for k in step["finetuned"]}
        names = _targets(doc.names(), step, "the document")
        return TaskArithmeticEdit(fts, step["lambdas"], names, doc,
                                  paths={k: inputs.path(k) for k in fts}, glob=_glob(step))
    from .merge_lora import LoraMergeEdit
    adapter, cfg = inputs.adapter(step["adapter"])
    return LoraMergeEdit(doc, adapter, cfg, step["adapter"], inputs.path(step["adapter"]))
