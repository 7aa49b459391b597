"""What saving as safetensors would lose: the non-tensor content of a checkpoint, by dotted path."""
from __future__ import annotations

import torch

from ..model.document import Document
from ..model.nested import path_name


def entries_lost_in_safetensors(doc: Document) -> list[str]:
    """Dotted paths of the non-tensor content safetensors cannot hold (empty for a live model or
    a state_dict): a container without tensors counts once (``optimizer.param_groups``), one with
    tensors is looked into, since its tensors are saved. Iterative and linear: deep or
    self-referencing containers neither overflow the stack nor loop."""
    if doc.module is not None or doc.container is None:
        return []
    root = doc.container
    if isinstance(root, torch.Tensor):
        return []
    if not isinstance(root, (dict, list, tuple)):
        return ["(the whole object)"]
    holds = _containers_holding_tensors(root)
    lost: list[str] = []
    stack: list[tuple[object, tuple]] = [(root, ())]
    entered: set[int] = set()
    while stack:
        obj, path = stack.pop()
        if isinstance(obj, torch.Tensor):
            continue
        if isinstance(obj, (dict, list, tuple)) and (not path or holds.get(id(obj))):
            if id(obj) in entered:
                continue
            entered.add(id(obj))
            items = list(obj.items() if isinstance(obj, dict) else enumerate(obj))
            stack.extend((v, path + (k,)) for k, v in reversed(items))
        elif not (isinstance(obj, (dict, list, tuple)) and not obj):  # empty containers: nothing
            lost.append(path_name(path))
    return lost


def _containers_holding_tensors(root) -> dict[int, bool]:
    """id(container) -> whether a tensor lies anywhere inside it (post-order, no recursion)."""
    holds: dict[int, bool] = {}
    stack: list[tuple[object, bool]] = [(root, False)]
    while stack:
        obj, children_done = stack.pop()
        values = list(obj.values()) if isinstance(obj, dict) else list(obj)
        if children_done:
            holds[id(obj)] = any(isinstance(v, torch.Tensor) or holds.get(id(v), False) for v in values)
            continue
        if id(obj) in holds:
            continue
        holds[id(obj)] = False  # provisional: a cycle back to it adds nothing
        stack.append((obj, True))
        stack.extend((v, False) for v in values
                     if isinstance(v, (dict, list, tuple)) and id(v) not in holds)
    return holds
