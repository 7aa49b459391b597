"""Choosing the tensors to initialise like ``net.apply(fn)``: under a module, by module type,
weights / biases / parameters, tied tensors once."""
from __future__ import annotations

import re

from ..errors import UserError
from ..model.document import Document
from ..model.tree import GROUP, MODULE, ROOT, Node


WHICH = ("weights", "biases", "parameters", "all")


def _wanted(entry, which: str) -> bool:
    last = entry.name.rsplit(".", 1)[-1]
    if which == "weights":
        return last.startswith("weight")
    if which == "biases":
        return last.startswith("bias")
    if which == "parameters":
        return entry.kind == "parameter"
    if which == "all":
        return True
    raise UserError(f"which must be one of {', '.join(WHICH)}, not {which!r}")


def module_filter_available(doc: Document) -> bool:
    """True when the tree knows module classes (live models, TorchScript)."""
    return any(n.kind == MODULE for n in doc.root.walk()) or bool(doc.root.type_name)


def _is_module(node: Node) -> bool:
    return node.entry is None and node.kind in (ROOT, MODULE, GROUP)


def find_module_node(doc: Document, root: str) -> Node:
    node = doc.root if root == "" else doc.node(root)
    if node is None or not _is_module(node):
        raise UserError(f"no module or group named {root!r}")
    return node


def module_types_under(doc: Document, root: str = "", *, recursive: bool = True) -> list[str]:
    """Class names of the modules under ``root`` (itself included) that own tensors directly."""
    node = find_module_node(doc, root)
    nodes = node.walk() if recursive else iter([node])
    found: list[str] = []
    for n in nodes:
        if _is_module(n) and n.type_name and any(c.entry is not None for c in n.children):
            if n.type_name not in found:
                found.append(n.type_name)
    return found


def is_norm_type(type_name: str) -> bool:
    """BatchNorm*, LayerNorm, GroupNorm, InstanceNorm*, RMSNorm, and user classes like them."""
    return "Norm" in type_name


_NESTED_QUANTIFIER = re.compile(r"\([^()]*(?:[*+?}]|\|)[^()]*\)\s*[*+?{]")
MAX_PATTERN = 100


def match_module_types(patterns: list[str], found: list[str], where: str = "the model") -> list[str]:
    """Class names among ``found`` that a pattern names: the exact class name, a substring
    (``classname.find('Conv') != -1``) or a regular expression searched in the class name.

    Raises UserError for a pattern that matches nothing, or a regular expression that could
    backtrack for ever (a quantified group holding a quantifier or an alternation)."""
    chosen: list[str] = []
    for pattern in patterns:
        pattern = pattern.removeprefix("torch.").removeprefix("nn.")
        if len(pattern) > MAX_PATTERN:
            raise UserError(f"a module type pattern has at most {MAX_PATTERN} characters")
        if _NESTED_QUANTIFIER.search(pattern):
            raise UserError(f"{pattern!r}: nested repetition is not allowed in a module type "
                            "pattern (it could take for ever)")
        try:
            compiled = re.compile(pattern)
        except re.error:
            compiled = None
        hits = [t for t in found if t == pattern or pattern in t
                or (compiled is not None and compiled.search(t))]
        if not hits:
            raise UserError(f"no {pattern} module under {where} (found: {', '.join(found) or 'none'})")
        chosen += [t for t in hits if t not in chosen]
    return chosen


def norm_weights_left_out(doc: Document, root: str, *, recursive: bool = True) -> list[str]:
    """The normalisation-layer weights that "weights" without a module-type filter leaves out."""
    if root in doc.tensors or not module_filter_available(doc):
        return []
    node = find_module_node(doc, root)
    owners = node.walk() if recursive else iter([node])
    names = {c.entry.name for o in owners if _is_module(o) and is_norm_type(o.type_name)
             for c in o.children if c.entry is not None and _wanted(c.entry, "weights")}
    return [n for n in doc.tensors if n in names]


def select_tensors(doc: Document, root: str, *, module_types: list[str] | None = None,
                   which: str = "all", recursive: bool = True,
                   include_norm: bool | None = None) -> list[str]:
    """Tensors under the module / group ``root`` ("" = everything), walked like ``net.apply``.

    ``module_types``: only tensors owned directly by modules of those class names (ignored when
    the document has no module classes, e.g. a plain state_dict). ``which``: "weights" (last name
    part starts with ``weight``: ``weight``, ``weight_ih_l0``), "biases" (starts with ``bias``),
    "parameters" (no buffers) or "all". ``recursive=False``: only the module's own tensors.
    Document order; tied tensors once (the first alias in the selection). When ``root`` names a
    tensor, that tensor alone is returned.
    ``include_norm``: whether "weights" takes normalisation layers' weights (their 1.0 scales);
    by default only when ``module_types`` names those layers, as tutorials' init functions do.
    """
    if root in doc.tensors:
        return [root]
    node = find_module_node(doc, root)
    types = set(module_types) if module_types and module_filter_available(doc) else None
    picked: set[str] = set()
    owners = node.walk() if recursive else iter([node])
    if include_norm is None:
        include_norm = types is not None
    for owner in owners:
        if not _is_module(owner):
            continue
        if types is not None and owner.type_name not in types:
            continue
        if which == "weights" and not include_norm and is_norm_type(owner.type_name):
            continue
        for c in owner.children:
            if c.entry is not None and _wanted(c.entry, which):
                picked.add(c.entry.name)
    return dedupe_ties(doc, [n for n in doc.tensors if n in picked])


def dedupe_ties(doc: Document, names: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for n in names:
        if n in seen:
            continue
        seen.update(doc.aliases(n))
        out.append(n)
    return out
