"""Full pickles (``torch.save(model)``): name the code they would import without running any of it,
and load them only when the user says the file is trusted."""
from __future__ import annotations

import importlib
import os
import pickle
import pickletools
import sys
import zipfile
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING

import torch

from ..model.document import Document
from ..errors import CheckpointError, first_line as _first_line
from .zip_inflation import refuse_inflating_zipfile
from .zip_names import stored_only

#: a STACK_GLOBAL whose module/name could not be read statically: never treated as safe
UNRESOLVED = "<unresolved STACK_GLOBAL>"

_STRING_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE",
               "SHORT_BINUNICODE", "BINUNICODE8"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
#: a legacy torch.save file is five pickles (magic, protocol, sys_info, object, storage keys)
#: followed by raw storage bytes, which must not be read as opcodes
_LEGACY_PICKLES = 5


def unsafe_globals(path: str) -> list[str]:
    """Globals a torch pickle (zip or legacy) would import beyond torch's weights-only allowlist.

    Static: the pickle is disassembled, never executed. Empty for a plain state_dict.
    """
    path = os.fspath(path)
    try:
        if zipfile.is_zipfile(path):
            found = _unsafe(_zip_globals(path))  # torch's own scan stops at protocol 0/1 opcodes
        else:
            found = _unsafe(_legacy_globals(path))
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read: {exc.strerror or exc}") from None
    except (ValueError, RuntimeError, zipfile.BadZipFile, EOFError, UnicodeDecodeError,
            KeyError, IndexError, TypeError, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"{path} is not a readable torch pickle: {_first_line(exc)}") from None
    return sorted(set(found))


def load_trusted(path: str) -> Document:
    """Unpickle ``path`` with ``weights_only=False``: ONLY for files the user has said to trust.

    A pickled ``nn.Module`` becomes a live-model document over the unpickled model itself.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path} does not exist")
    mmap = zipfile.is_zipfile(path) and stored_only(path)
    ensure_cwd_importable()
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
    except ModuleNotFoundError as exc:
        raise CheckpointError(
            f"{path} needs the module {exc.name!r} to be importable (its model code); "
            "add it to PYTHONPATH or run from its folder") from None
    except Exception as exc:  # the pickle ran code that failed: say what, not where
        raise CheckpointError(f"{path} could not be loaded: {type(exc).__name__}: "
                              f"{_first_line(exc)}") from None
    if isinstance(obj, torch.nn.Module):
        return Document.from_module(obj, path=path, fmt="torch-module")
    return Document.from_object(obj, path=path, fmt="torch")


# -- static scan of zip and legacy (non-zip) pickles ------------------------------------------
def _zip_globals(path: str) -> set[str]:
    with zipfile.ZipFile(path) as z:
        # checked here too: is_zipfile finds a zip at the end of a file that detect() took for a
        # legacy pickle, and a deflated data.pkl streams in at ~1000x the file
        refuse_inflating_zipfile(z, path)
        pkls = [n for n in z.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise ValueError("it holds no single <archive>/data.pkl of a torch checkpoint")
        with z.open(pkls[0]) as f:
            return pickle_globals(f)

def _legacy_globals(path: str) -> set[str]:
    found: set[str] = set()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        for _ in range(_LEGACY_PICKLES):
            if f.tell() >= size:
                break
            found |= pickle_globals(f)
    return found


def pickle_globals(f) -> set[str]:
    """``module.name`` of every GLOBAL / STACK_GLOBAL in the one pickle starting at ``f``'s position.

    Reads up to (and including) its STOP opcode. Module names from protocol 2 (``__builtin__``)
    are mapped to Python 3's, as the unpickler does.
    """
    found: set[str] = set()
    memo: dict[int, object] = {}
    recent: list[object] = []  # values of recent pushes, enough to resolve STACK_GLOBAL
    for op, arg, _pos in pickletools.genops(f):
        name = op.name
        if name in ("GLOBAL", "INST"):  # INST names its class like GLOBAL
            module, _, attr = str(arg).partition(" ")
            found.add(_qualified(module, attr))
            recent.append(None)
        elif name == "STACK_GLOBAL":
            module, attr = (recent[-2], recent[-1]) if len(recent) >= 2 else (None, None)
            if isinstance(module, str) and isinstance(attr, str):
                found.add(_qualified(module, attr))
            else:
                found.add(UNRESOLVED)
            recent.append(None)
        elif name in _STRING_OPS:
            recent.append(arg if isinstance(arg, str) else None)
        elif name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        elif name in _PUT_OPS:
            memo[arg] = recent[-1] if recent else None
        elif name in _GET_OPS:
            recent.append(memo.get(arg))
        elif op.stack_after:  # anything else that pushes: not a string
            recent.append(None)
        del recent[:-8]
    return found


def _qualified(module: str, name: str) -> str:
    if (module, name) in NAME_MAPPING:
        module, name = NAME_MAPPING[(module, name)]
    elif module in IMPORT_MAPPING:
        module = IMPORT_MAPPING[module]
    return f"{module}.{name}"


def _unsafe(found: set[str]) -> list[str]:
    from torch import _weights_only_unpickler as wo
    safe = set(wo._get_allowed_globals()) | set(wo._get_user_allowed_globals())
    return [g for g in found if g not in safe]



def ensure_cwd_importable() -> None:
    """Let modules in the current directory be imported (``main.py`` puts only its own folder on
    ``sys.path``): a trusted pickle's or a model factory's classes may live beside the user.
    Appended, so it never shadows installed packages; it stays: model code may import lazily."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
        importlib.invalidate_caches()
