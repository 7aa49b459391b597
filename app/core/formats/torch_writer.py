"""Write torch's zip format: the checkpoint's own container (entries kept) or a state_dict."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, BinaryIO

import torch

from ..model.document import Document
from .safetensors_writer import read_for_save


def object_to_save(doc: Document) -> Any:
    """What ``torch.save`` writes for ``doc``.

    A torch pickle writes back its ``container`` (kept in step with renames, deletes and casts,
    so epoch, optimizer state, config and an OrderedDict's ``_metadata`` survive). Everything
    else becomes an OrderedDict of every name in order, aliases sharing one storage.
    """
    if doc.container is not None and doc.module is None:
        return doc.container
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    read: dict[str, torch.Tensor] = {}
    for e in doc.tensors.values():
        if not e.persistent:  # a module's non-persistent buffer: not in its state_dict()
            continue
        name = e.name
        t = read.get(name)  # an alias of a tensor read here: the same object, so one storage
        if t is None:
            t = read_for_save(e)  # not cached on the entry: freed once saved
            read.update({a: t for a in e.shared_with})
        out[name] = t.detach() if isinstance(t, torch.nn.Parameter) or t.requires_grad else t
    return out


def write_torch(f: BinaryIO, doc: Document) -> None:
    """``torch.save`` of the document; a torch zip file whose structure is unchanged (values
    edited only) is written as a copy of the opened file with the edited storages replaced."""
    obj = object_to_save(doc)
    if doc.format == "torch" and doc.container is not None and obj is doc.container:
        from .torch_zip_stream import stream_save
        if stream_save(f, doc, obj):
            return
    torch.save(obj, f)
