"""Architecture from code: ``package.module:factory`` builds the model, a checkpoint's state_dict
is copied into the model's own tensors in place, and what did not fit is reported, not fatal."""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import sys
from typing import Any

import torch

from ..model.document import Document
from ..errors import UserError, first_line as _first_line
from ..formats import load_document
from ..formats.pickle_trust import ensure_cwd_importable
from ..model.nested import path_name
from ..model.tensor_entry import TENSOR, TensorEntry
from ..model.ties import link_aliases
from ..model.tree import GROUP, Node, tree_from_names

#: keys of a training checkpoint that usually hold the model's state_dict, most likely first
SOURCE_KEYS = ("state_dict", "model", "module", "model_state_dict")
#: wrappers that prefix every name: DataParallel / DDP (``module.``), torch.compile (``_orig_mod.``)
STRIP_PREFIXES = ("module.", "_orig_mod.", "module._orig_mod.", "_orig_mod.module.")
#: the tree group holding the file's tensors that the model has no place for
UNEXPECTED_GROUP = "unexpected"
#: what a model-code document is saved as, where the file's own format holds more than a state_dict
_STATE_DICT_FORMAT = {"torch-module": "torch", "torchscript": "torch"}

_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def load_into_model(path: str, spec: str, model_args: str | None = None,
                    trust: bool = False) -> Document:
    """Build the model from ``spec`` and load the state_dict found in ``path`` into it.

    The document is a live model (``doc.module``) whose ``load_report`` lists ``missing``,
    ``unexpected`` and ``mismatched`` names, the ``stripped_prefix`` and the ``source_key``.
    """
    model = build_model(spec, model_args)
    file_doc = load_document(path, trust=trust)
    try:
        source_key, prefix, state = find_state_dict(file_doc, model.state_dict().keys())
        report, unexpected = copy_state(model, state)
        report.update(stripped_prefix=prefix, source_key=source_key)
        fmt = _STATE_DICT_FORMAT.get(file_doc.format, file_doc.format)
        doc = ModelDocument.from_module(model, path=os.fspath(path), fmt=fmt,
                                        entries=file_doc.entries)
        doc.add_unexpected(unexpected)
        doc.load_report = report
        return doc
    finally:
        file_doc.close()


# -- the model from code -------------------------------------------------------------------------
def build_model(spec: str, model_args: Any = None) -> torch.nn.Module:
    """Call the factory named by ``spec`` with ``model_args`` (JSON object -> keywords, list ->
    positional arguments). Every failure is a UserError naming what went wrong."""
    args, kwargs = parse_model_args(model_args)  # before the import runs any of the user's code
    factory = resolve_factory(spec)
    try:
        model = factory(*args, **kwargs)
    except Exception as exc:
        raise UserError(f"the model factory {spec} failed: {type(exc).__name__}: "
                        f"{_first_line(exc)}") from None
    if not isinstance(model, torch.nn.Module):
        raise UserError(f"the model factory {spec} returned a {type(model).__name__}, "
                        "not a torch.nn.Module")
    return model


def resolve_factory(spec: str):
    module_name, sep, attr = (spec or "").strip().rpartition(":")
    if not sep or not module_name or not attr:
        raise UserError(f"the model is written package.module:factory, not {spec!r}")
    module = import_model_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UserError(f"{module_name} has no {attr!r} (from the model {spec!r})") from None
    if not callable(obj):
        raise UserError(f"{spec} is a {type(obj).__name__}, not a function or class to call")
    return obj


def import_model_module(name: str):
    """Import ``name`` (also from the current directory), or a ``.py`` file given by its path."""
    if name.endswith(".py"):
        return _import_file(name)
    if not _MODULE_NAME.match(name):
        raise UserError(f"{name!r} is not a Python module name (package.module)")
    ensure_cwd_importable()
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise UserError(f"no module named {exc.name!r}: put it on PYTHONPATH or run from "
                            "its folder") from None
        raise UserError(f"importing {name} failed: {_first_line(exc)}") from None
    except Exception as exc:
        raise UserError(f"importing {name} failed: {type(exc).__name__}: "
                        f"{_first_line(exc)}") from None


def _import_file(path: str):
    if not os.path.isfile(path):
        raise UserError(f"{path} does not exist")
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, os.path.abspath(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # classes defined there must stay importable (pickling, repr)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise UserError(f"importing {path} failed: {type(exc).__name__}: "
                        f"{_first_line(exc)}") from None
    return module


def parse_model_args(model_args: Any) -> tuple[tuple, dict]:
    """JSON text (or an already parsed object) -> (positional, keyword) arguments."""
    if model_args is None or (isinstance(model_args, str) and not model_args.strip()):
        return (), {}
    value = model_args
    if isinstance(model_args, (str, bytes)):
        try:
            value = json.loads(model_args)
        except json.JSONDecodeError as exc:
            raise UserError(f"--model-args is not valid JSON ({exc.msg} at line {exc.lineno}, "
                            f"column {exc.colno}): {model_args!r}") from None
    if isinstance(value, dict):
        return (), dict(value)
    if isinstance(value, (list, tuple)):
        return tuple(value), {}
    raise UserError("--model-args must be a JSON object (keyword arguments) or a JSON list "
                    f"(positional arguments), not {type(value).__name__}")


# -- which part of the file is the state_dict --------------------------------------------------
def find_state_dict(file_doc: Document, model_keys) -> tuple[str | None, str | None,
                                                             dict[str, TensorEntry]]:
    """(source key, stripped prefix, name -> file entry) matching the most of ``model_keys``.

    Candidates: the file's flat names, and each top-level key's sub-dict (``state_dict``,
    ``model``, ... first), each as is or with a wrapper prefix stripped. On a tie the earlier
    candidate wins, so a training checkpoint's ``model`` beats its other keys when nothing fits.
    """
    wanted = set(model_keys)
    groups: dict[str | None, dict[str, TensorEntry]] = {None: {}}
    for e in file_doc.tensors.values():
        groups[None].setdefault(e.name, e)
        if len(e.path) >= 2 and isinstance(e.path[0], str):
            groups.setdefault(e.path[0], {}).setdefault(path_name(e.path[1:]), e)
    order = [k for k in SOURCE_KEYS if k in groups] + [None]
    order += [k for k in groups if k not in order]
    best, best_score = (None, None, groups[None]), -1
    for key in order:
        for prefix in (None, *STRIP_PREFIXES):
            names = groups[key]
            if prefix is not None:
                if not any(n.startswith(prefix) for n in names):
                    continue
                names = _strip(names, prefix)
            score = sum(1 for n in names if n in wanted)
            if score > best_score:
                best, best_score = (key, prefix, names), score
    return best


def _strip(names: dict[str, TensorEntry], prefix: str) -> dict[str, TensorEntry]:
    out: dict[str, TensorEntry] = {}
    for n, e in names.items():
        out.setdefault(n[len(prefix):] if n.startswith(prefix) else n, e)
    return out


# -- copying values in place --------------------------------------------------------------------
def copy_state(model: torch.nn.Module, state: dict[str, TensorEntry]
               ) -> tuple[dict, list[tuple[str, torch.Tensor]]]:
    """Copy every fitting tensor of ``state`` into the model's own tensor (``copy_``, dtype and
    device converted as ``load_state_dict`` does); returns (report, unexpected name/tensor)."""
    targets = model.state_dict(keep_vars=True)
    loaded: list[str] = []
    unexpected: list[tuple[str, torch.Tensor]] = []
    mismatched: dict[str, dict[str, list[int]]] = {}
    with torch.no_grad():
        for name, entry in state.items():
            target = targets.get(name)
            if target is None:
                unexpected.append((name, entry.tensor()))
                continue
            _check_target(name, target)
            if tuple(target.shape) != tuple(entry.shape):
                mismatched[name] = {"file": list(entry.shape), "model": list(target.shape)}
                continue
            target.copy_(entry.tensor())
            loaded.append(name)
    by_object = {id(targets[n]): n for n in loaded}
    done = set(loaded) | set(mismatched)
    missing, tied = [], {}
    for name, target in targets.items():
        if name in done:
            continue
        if id(target) in by_object:  # a tied alias, filled through the name that was loaded
            tied[name] = by_object[id(target)]
        else:
            missing.append(name)
    report = {"missing": missing, "unexpected": [n for n, _ in unexpected],
              "mismatched": mismatched, "stripped_prefix": None, "source_key": None,
              "loaded": len(loaded), "filled_by_alias": tied}
    return report, unexpected


def _check_target(name: str, target: torch.Tensor) -> None:
    if torch.nn.parameter.is_lazy(target):
        raise UserError(f"{name} is an uninitialized (lazy) parameter: let the factory run a "
                        "forward pass so the model has real shapes")
    if target.device.type == "meta":
        raise UserError(f"{name} is on the meta device: the factory must build real tensors")


def describe_report(report: dict | None) -> list[str]:
    """Short lines for people: what was loaded and what did not fit."""
    if not report:
        return []
    lines = [f"loaded {report.get('loaded', 0)} tensors"
             + (f" from {report['source_key']!r}" if report.get("source_key") else "")
             + (f", stripped prefix {report['stripped_prefix']!r}"
                if report.get("stripped_prefix") else "")]
    if report.get("missing"):
        lines.append("missing (model values kept): " + _names(report["missing"]))
    if report.get("unexpected"):
        lines.append("unexpected (not in the model): " + _names(report["unexpected"]))
    for name, shapes in report.get("mismatched", {}).items():
        lines.append(f"shape mismatch (skipped): {name} file {shapes['file']} "
                     f"model {shapes['model']}")
    return lines


# -- the document ---------------------------------------------------------------------------------
class ModelDocument(Document):
    """A live model built from code; the file's tensors it has no place for are plain ``tensor``
    entries shown under an ``unexpected`` group at the end of the tree."""

    def add_unexpected(self, tensors: list[tuple[str, torch.Tensor]]) -> None:
        extra = [TensorEntry.of(n, t, TENSOR) for n, t in tensors if n not in self.tensors]
        if not extra:
            return
        link_aliases(extra)
        for e in extra:
            self.tensors[e.name] = e
        self.build_tree()

    def build_tree(self) -> Node:
        root = super().build_tree()
        extra = [e for e in self.tensors.values() if e.owner is None]
        if extra:
            group = Node(UNEXPECTED_GROUP, GROUP, "not in the model", root)
            for child in tree_from_names(extra).children:
                child.parent = group
                group.children.append(child)
        return root


def _names(names: list[str], most: int = 12) -> str:
    more = f" ... and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more
