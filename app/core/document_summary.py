"""The status bar's line about a document: tensors (tied ones), elements (tied storage once),
bytes, format. Remembered per document and revision, so the loading worker can work it out
(100k tensors: 13 ms) and the GUI thread only reads it when the document is shown."""
from __future__ import annotations

import threading
import weakref

from .report import human_count, human_size

_lock = threading.Lock()  # the loading worker fills in while the GUI thread reads
_known: "weakref.WeakKeyDictionary[object, tuple[tuple, str]]" = weakref.WeakKeyDictionary()


def _key(doc) -> tuple:
    return doc.revision, id(doc.root), len(doc.tensors), doc.format


def document_summary(doc) -> str:
    """``"12 tensors (2 tied) · 1.2 M elements · 4.6 MiB · torch"``."""
    key = _key(doc)
    with _lock:
        known = _known.get(doc)
    if known is not None and known[0] == key:
        return known[1]
    tied = sum(1 for e in doc.tensors.values() if e.shared_with)
    text = f"{len(doc.tensors)} tensors"
    if tied:
        text += f" ({tied} tied)"
    text = (f"{text} · {human_count(doc.total_numel())} elements · "
            f"{human_size(doc.total_bytes())} · {doc.format}")
    with _lock:
        _known[doc] = (key, text)
    return text
