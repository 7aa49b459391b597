"""One entry point for opening what the user names: a checkpoint, optionally into model code."""
from __future__ import annotations

from ..model.document import Document
from ..formats import load_document


def open_document(path: str, model: str | None = None, model_args: str | None = None,
                  trust: bool = False, progress=None) -> Document:
    if model:
        from .model_code import load_into_model  # issue 6: architecture from code
        return load_into_model(path, model, model_args, trust=trust)
    return load_document(path, progress=progress, trust=trust)
