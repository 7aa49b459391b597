"""Open any supported checkpoint as a Document: ``load_document(path)``."""
from __future__ import annotations

import os

from ..document import Document
from ..errors import CheckpointError
from .detect import SAFETENSORS, SHARDED, TORCH_LEGACY, TORCH_ZIP, TORCHSCRIPT, detect


def load_document(path: str, progress=None, trust: bool = False) -> Document:
    """Open ``path`` lazily. Raises CheckpointError (or UnsafePickleError) with a user message."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path} does not exist")
    try:
        kind = detect(path)
    except ValueError as exc:
        raise CheckpointError(f"{path} cannot be opened: {exc}") from None
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if kind == SHARDED:
        from .sharded import load_sharded
        return load_sharded(path, progress=progress, trust=trust)
    if kind == SAFETENSORS:
        from .safetensors_file import load_safetensors
        return load_safetensors(path)
    if kind == TORCHSCRIPT:
        from .torchscript import load_torchscript
        return load_torchscript(path)
    from .torch_pickle import load_torch
    return load_torch(path, legacy=kind == TORCH_LEGACY, trust=trust)


__all__ = ["load_document", "detect", "Document", "CheckpointError",
           "SAFETENSORS", "SHARDED", "TORCH_LEGACY", "TORCH_ZIP", "TORCHSCRIPT"]
