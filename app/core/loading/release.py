"""Letting go of a document that was replaced: on a worker, one piece at a time.

Dropping the last reference to a document of 100k tensors frees everything in one chain of C
calls (~0.1 s) that holds the GIL throughout: on the GUI thread that is a stall, and on a worker
the GUI thread would wait as long for the GIL. ``release`` first takes a reference to every part
(tree nodes, entries, tensors, the loaded containers), lets the document go (cheap: its parts are
still held), then drops the parts one by one, parents before children, so each goes alone; the
interpreter hands the GIL over between two of them. Nothing of the document is changed: a
document still referenced elsewhere simply stays whole.
"""
from __future__ import annotations


def release(box: list) -> None:
    """Close and free the document in ``box`` (its only holder: ``box.pop()`` takes it)."""
    doc = box.pop()
    try:
        doc.close()
    except Exception:  # closing is best effort, as in Document.close
        pass
    parts = _parts(doc)
    del doc
    for i in range(len(parts)):  # a Python loop: the GIL can change hands between pieces
        parts[i] = None


def _parts(doc) -> list:
    """Every node, container, entry and tensor of ``doc``, each after what holds it."""
    parts: list = []
    nodes = [doc.root]
    while nodes:
        node = nodes.pop()
        parts.append(node)
        nodes.extend(node.children)
    containers = [doc.container]
    while containers:
        value = containers.pop()
        parts.append(value)
        if isinstance(value, dict):
            containers.extend(value.values())
        elif isinstance(value, (list, tuple)):
            containers.extend(value)
    entries = list(doc.tensors.values())
    parts += entries
    parts += [e.tensor() for e in entries if e.is_loaded]
    return parts
