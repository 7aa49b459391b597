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
    if not legacy and not trust:
        unsafe = _unsafe_globals(path)
        if unsafe:
            raise UnsafePickleError(path, unsafe)
    try:
        obj = _torch_load(path, weights_only=not trust, mmap=not legacy)
    except pickle.UnpicklingError as exc:
        found = re.findall(r"(?:GLOBAL|global) ([\w.]+(?: [\w.]+)?)", str(exc))
        if "weights_only" in str(exc) or found:
            raise UnsafePickleError(path, [g.replace(" ", ".") for g in found]) from None
        raise CheckpointError(f"{path} is corrupt: {_first_line(exc)}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(f"{path} is truncated or corrupt: {_first_line(exc)}") from None
    fmt = "torch"
    if isinstance(obj, torch.nn.Module):
        return Document.from_module(obj, path=path, fmt=fmt)
    return Document.from_object(obj, path=path, fmt=fmt)


def _torch_load(path: str, weights_only: bool, mmap: bool):
    if path.endswith(".safetensors"):  # torch.load would hand such a name to safetensors
        with open(path, "rb") as f:
            return torch.load(f, map_location="cpu", weights_only=weights_only)
    return torch.load(path, map_location="cpu", weights_only=weights_only, mmap=mmap)


def _unsafe_globals(path: str) -> list[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception as exc:  # a broken archive: let torch.load say what is wrong
        if isinstance(exc, (zipfile.BadZipFile, RuntimeError, EOFError, OSError)):
            raise CheckpointError(f"{path} is truncated or corrupt: {_first_line(exc)}") from None
        return []


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
