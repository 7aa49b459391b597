"""torch.save files: zip archives (memory-mapped) and legacy pickles, always weights-only."""
from __future__ import annotations

import pickle
import re
import zipfile

import torch

from ..document import Document
from ..errors import CheckpointError, UnsafePickleError


def load_torch(path: str, legacy: bool = False, trust: bool = False) -> Document:
    """Weights-only unless ``trust``; refuses (without executing anything) a pickle needing code."""
    from ..trust import load_trusted, unsafe_globals  # static scan; trusted load
    if trust:
        return load_trusted(path)
    unsafe = unsafe_globals(path)  # zip and legacy pickles alike, nothing executed
    if unsafe:
        raise UnsafePickleError(path, unsafe)
    try:
        obj = _torch_load(path, weights_only=True, mmap=not legacy)
    except pickle.UnpicklingError as exc:
        found = re.findall(r"GLOBAL ([\w.]+) was not an allowed global", str(exc))
        if "weights_only" in str(exc) or found:
            raise UnsafePickleError(path, found) from None
        raise CheckpointError(f"{path} is corrupt: {_first_line(exc)}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(f"{path} is truncated or corrupt: {_first_line(exc)}") from None
    if isinstance(obj, torch.nn.Module):
        return Document.from_module(obj, path=path, fmt="torch")
    return Document.from_object(obj, path=path, fmt="torch")


def _torch_load(path: str, weights_only: bool, mmap: bool):
    if path.endswith(".safetensors"):  # torch.load would hand such a name to safetensors
        with open(path, "rb") as f:
            return torch.load(f, map_location="cpu", weights_only=weights_only)
    return torch.load(path, map_location="cpu", weights_only=weights_only, mmap=mmap)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
