"""Open any supported checkpoint as a Document: ``load_document(path)``.

Every file is untrusted: only regular files and folders are opened (a FIFO or device would hang
``open``), and whatever a reader raises becomes one CheckpointError whose message says what is
wrong with the file, never a traceback.
"""
from __future__ import annotations

import os
import stat

from ..model.document import Document
from ..errors import Cancelled, CheckpointError, ContentError, UserError
from .collector import collector_paused
from .detect import (SAFETENSORS, SHARDED, TORCH_LEGACY, TORCH_ZIP, TORCHSCRIPT, detect,
                     require_regular)


def load_document(path: str, progress=None, trust: bool = False) -> Document:
    """Open ``path`` lazily. Raises CheckpointError (or UnsafePickleError) with a user message."""
    path = os.fspath(path)
    try:
        with _no_gc_pauses():
            return _load(path, progress, trust)
    except ContentError as exc:
        raise CheckpointError(f"{path} cannot be opened: {exc}") from None
    except (UserError, Cancelled):
        raise
    except RecursionError:
        raise CheckpointError(f"{path} cannot be opened: its content nests too deeply") from None
    except MemoryError:
        raise CheckpointError(f"{path} cannot be opened: it needs more memory than there is") from None
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read: {exc.strerror or exc}") from None
    except Exception as exc:  # a malformed file reaching a reader's blind spot: still one line
        text = str(exc).strip().splitlines()
        raise CheckpointError(f"{path} is truncated or corrupt ({type(exc).__name__}: "
                              f"{text[0] if text else 'no detail'})") from None


def _no_gc_pauses():
    """Building a document of 100k tensors makes ~10 objects per tensor, none of them garbage."""
    return collector_paused(age_what_was_made=True)


def _load(path: str, progress, trust: bool) -> Document:
    mode = require_regular(path)
    from .dcp import is_dcp
    if is_dcp(path):  # torch.distributed.checkpoint: .metadata + .distcp files
        from .dcp import load_dcp
        return load_dcp(path, progress=progress)
    from .hf_folder import find_hf_folder
    hf = find_hf_folder(path)  # Hugging Face model or PEFT adapter folder: config + weights
    if hf is not None:
        from .hf_folder import load_hf_folder
        return load_hf_folder(hf, progress=progress, trust=trust)
    try:
        kind = detect(path)
    except ValueError as exc:
        raise CheckpointError(f"{path} cannot be opened: {exc}") from None
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if kind == SHARDED:
        from .sharded import load_sharded
        return load_sharded(path, progress=progress, trust=trust)
    if stat.S_ISDIR(mode):
        raise CheckpointError(f"{path} is a folder, not a checkpoint")
    if kind == SAFETENSORS:
        from .safetensors_file import load_safetensors
        return load_safetensors(path)
    if kind == TORCHSCRIPT:
        from .torchscript import load_torchscript
        return load_torchscript(path, trust=trust)
    from .torch_pickle import load_torch
    return load_torch(path, legacy=kind == TORCH_LEGACY, trust=trust)


def verify_document(path: str, progress=None, cancel=None) -> list[str]:
    """Check what a file's own checksums cover (zip member CRCs); see ``verify.py``."""
    from .verify import verify_path
    return verify_path(os.fspath(path), progress=progress, cancel=cancel)


__all__ = ["load_document", "verify_document", "detect", "Document", "CheckpointError",
           "SAFETENSORS", "SHARDED", "TORCH_LEGACY", "TORCH_ZIP", "TORCHSCRIPT"]
