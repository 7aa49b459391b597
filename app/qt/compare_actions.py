"""Acting on a comparison: transplant the selected tensor or subtree from the reference, or
interpolate with it. Both submit one undoable core edit through the window's edit flows
(``EditFlows.submit``: a big one runs on a worker, the window blocked meanwhile), recorded with the
reference as a recipe input ("ref", "ref2", ... when several references were used).
"""
from __future__ import annotations


def transplant_names(res, node) -> list[str]:
    """Reference names under the tree node (everything for the root or no selection)."""
    prefix = node.full_name if node is not None else ""

    def under(name: str) -> bool:
        return not prefix or name == prefix or name.startswith(prefix + ".")
    names = [nb for _k, (na, nb) in res.pairs.items() if under(na)]
    return names + [nb for nb in res.only_b if under(nb)]


def input_name(flows) -> str:
    """"ref", or "ref2", "ref3"... when earlier edits took "ref" from another file."""
    used: dict[str, str] = {}
    for e in flows.controller.edits.applied_edits():
        used.update(getattr(e, "inputs", {}))
    n = 1
    while True:
        name = "ref" if n == 1 else f"ref{n}"
        if used.get(name, flows.reference_path) == flows.reference_path:
            return name
        n += 1


def transplant_selection(flows) -> str | None:
    """Copy the selected tensor / subtree from the reference; returns what was refused."""
    if flows.result is None or flows.reference is None:
        return None
    from ..core.compare.merge import TransplantEdit, plan_transplant
    doc = flows.controller.document
    names = transplant_names(flows.result, flows.views.tree.current_node())
    copy, add, refused = plan_transplant(doc, flows.reference, names)
    why = "; ".join(f"{n}: {r}" for n, r in refused[:3]) + (
        f" (and {len(refused) - 3} more)" if len(refused) > 3 else "")
    if not copy and not add:
        flows.status(
            "Nothing to transplant" + (f" — refused: {why}" if why else ""), 15000)
        return why
    edit = TransplantEdit(flows.reference, [s for _t, s in copy + add], input_name(flows),
                          flows.reference_path)
    text = f"Transplanted {len(copy)} tensor(s) in place, added {len(add)}"
    error = _submit(flows, edit, "Not transplanted", text + (f"; refused {why}" if why else ""),
                    15000)
    return error if error is not None else why


def interpolate(flows, t: float) -> str | None:
    """``(1 - t)·W + t·W_ref`` over the matched tensors of equal shape; None when applied."""
    if flows.result is None or flows.reference is None:
        return None
    from ..core.compare.merge import LinearMergeEdit
    doc = flows.controller.document
    shapes = {s["name"] for s in flows.result.shape_changed}
    names = [na for k, (na, nb) in flows.result.pairs.items()
             if k not in shapes and na == nb and doc.entry(na).dtype.is_floating_point]
    if not names:
        flows.status("No tensors to interpolate", 8000)
        return "nothing to interpolate"
    name = input_name(flows)
    edit = LinearMergeEdit({name: flows.reference}, [1.0 - t, t], names, doc,
                           paths={name: flows.reference_path})
    return _submit(flows, edit, "Not interpolated",
                   f"Interpolated {len(names)} tensors with the reference (t = {t:g})", 8000)


def _submit(flows, edit, refused: str, applied: str, timeout: int) -> str | None:
    """Submit ``edit``; say how it ended when it ends. Returns the error when it failed at
    once (a big edit's later failure is only said)."""
    errors: list[str] = []

    def done(error) -> None:
        if error is None:
            flows.status(applied, timeout)
        else:
            errors.append(str(error))
            flows.status(f"{refused}: {error}", 15000)
    flows.edit_flows.submit(edit, done)
    return errors[0] if errors else None
