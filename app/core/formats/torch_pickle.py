"""torch.save files: zip archives (memory-mapped) and legacy pickles, always weights-only.

Read in this order, nothing executed at any step:

0. a zip archive holding only plain things (dicts, lists, numbers, strings, tensors and
   Parameters): ``torch_zip_mapped``, which makes what step 1 would, without torch's zip reader;
1. ``torch.load(weights_only=True)``, memory-mapped for zip archives (unless a record is
   compressed: torch would map its compressed bytes as the tensor's): it refuses any global
   outside torch's weights-only allowlist (plus the numpy globals torch documents as safe);
2. where torch's unpickler stops at an opcode it does not implement (Python 2 era pickles:
   ``Unsupported operand 73``), our own restricted unpickler (``restricted_pickle``), which
   knows every opcode and allows exactly the same globals;
3. only when the load refuses the file, a static scan of the whole pickle
   (``pickle_trust.unsafe_globals``) names every global it would import, for the refusal: the
   scan costs as much as the load itself, so a plain state_dict never pays it.
"""
from __future__ import annotations

import contextlib
import pickle
import re
import threading
import zipfile

import torch
from torch import _weights_only_unpickler as _wo

from ..model.document import Document
from ..errors import CheckpointError, UnsafePickleError, first_line as _first_line
from . import restricted_pickle
from .zip_names import stored_only
from ..gil_pacer import Pacer


def numpy_safe_globals() -> list:
    """The numpy globals torch's docs list as safe for weights-only loading (arrays, dtypes,
    scalars), under numpy 2 and numpy 1 module names."""
    try:
        import numpy as np
    except ImportError:
        return []
    core = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    out = [np.ndarray, np.dtype, core._reconstruct, core.scalar,
           (core._reconstruct, "numpy.core.multiarray._reconstruct"),
           (core.scalar, "numpy.core.multiarray.scalar")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")
                and isinstance(getattr(dtypes, n), type)]
    return out


_lock = threading.Lock()
_users = 0
_added: list = []


@contextlib.contextmanager
def weights_only_globals():
    """Context in which torch's weights-only unpickler (and ours) also allows the numpy globals.

    torch keeps its allowlist in one process-wide set: loads running in several threads share
    one registration (counted), and globals the user registered before are never removed.
    """
    global _users, _added
    with _lock:
        if _users == 0:
            present = list(torch.serialization.get_safe_globals())
            _added = [g for g in numpy_safe_globals() if g not in present]
            torch.serialization.add_safe_globals(_added)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _added:
                keep = [g for g in torch.serialization.get_safe_globals() if g not in _added]
                torch.serialization.clear_safe_globals()
                torch.serialization.add_safe_globals(keep)
                _added = []


def load_torch(path: str, legacy: bool = False, trust: bool = False) -> Document:
    """Weights-only unless ``trust``; refuses (without executing anything) a pickle needing code."""
    from .pickle_trust import load_trusted
    if trust:
        return load_trusted(path)
    with weights_only_globals():
        try:
            if legacy:
                _refuse_costly(path, legacy=True)
            mapped = _load_legacy_mapped(path) if legacy else None
            obj, closers = mapped if mapped is not None else (_load_weights_only(path, legacy), [])
        except UnsafePickleError as exc:
            raise UnsafePickleError(path, _name_globals(path, exc.globals)) from None
        except Exception:  # any refusal: what the static scan says first, as before the load
            from .pickle_trust import unsafe_globals
            unsafe = unsafe_globals(path)  # a CheckpointError of its own for an unreadable pickle
            if unsafe:
                raise UnsafePickleError(path, unsafe) from None
            raise
    if isinstance(obj, torch.nn.Module):
        return Document.from_module(obj, path=path, fmt="torch", closers=closers)
    return Document.from_object(obj, path=path, fmt="torch", closers=closers)


def _name_globals(path: str, found: list[str]) -> list[str]:
    """Every global the refused pickle would import (the static scan, nothing executed), not
    only the first one the unpickler stopped at; ``found`` where the scan cannot read it."""
    from .pickle_trust import unsafe_globals
    try:
        return unsafe_globals(path) or found
    except CheckpointError:
        return found


def _load_legacy_mapped(path: str):
    """``(object, closers)`` of a legacy pickle whose storages view the file (``legacy_mapped``);
    None when it cannot be read that way: ``torch.load`` then reads it, and says what is wrong."""
    from .legacy_mapped import load_legacy_mapped
    factories = (lambda f: _wo.Unpickler(f, encoding="utf-8"),
                 lambda f: restricted_pickle.Unpickler(f, encoding="utf-8"))
    for make in factories:
        try:
            obj, close = load_legacy_mapped(path, make)
            torch._utils._validate_loaded_sparse_tensors()
            return obj, [close]
        except Exception:  # noqa: BLE001  (any refusal or oddity: the next reader, then torch's)
            torch._utils._sparse_tensors_to_validate.clear()
    return None


def _load_weights_only(path: str, legacy: bool):
    if not legacy:
        plain = _load_plain_zip(path)
        if plain is not _NOT_PLAIN:
            return plain
        _refuse_costly(path, legacy=False)
    try:
        return _torch_load(path, mmap=not legacy and stored_only(path))
    except pickle.UnpicklingError as exc:
        found = re.findall(r"GLOBAL ([\w.]+) was not an allowed global", str(exc))
        if found:
            raise UnsafePickleError(path, found) from None
        first = _first_line(exc)
        if "Unsupported operand" not in str(exc) and "Unsupported class" not in str(exc):
            raise CheckpointError(f"{path} is truncated or corrupt: {first}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, UnicodeDecodeError,
            KeyError, IndexError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path} is truncated or corrupt: {_first_line(exc)}") from None
    return _load_restricted(path, legacy)


_NOT_PLAIN = object()


def _load_plain_zip(path: str):
    """What ``torch.load`` would return, read by ``torch_zip_mapped`` (~5x faster at 100k
    tensors, and the GIL never held for long); ``_NOT_PLAIN`` where torch's reader is needed.
    Any error here means only that: ``torch.load`` reads the file again and says what is wrong."""
    from .torch_zip_mapped import Refused, load_zip_mapped
    try:
        return load_zip_mapped(path, Pacer())
    except Refused as exc:  # torch's unpickler would build it, at a cost out of all proportion
        raise CheckpointError(_refusal(path, exc)) from None
    except Exception:  # noqa: BLE001  (NotPlain, or a malformed file: torch's reader decides)
        return _NOT_PLAIN


def _refuse_costly(path: str, legacy: bool) -> None:
    """Before torch's unpickler reads the file: refuse what it would build at a cost out of all
    proportion to the file (``pickle_cost``)."""
    from .pickle_cost import check_cost
    from .state_pickle_calls import Refused
    try:
        if legacy:
            with open(path, "rb") as f:
                check_cost(f, pickles=4)  # magic number, protocol, system info, checkpoint
            return
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():  # every one torch might read, in whatever case
                if info.filename.lower().endswith("data.pkl"):
                    check_cost(z.read(info))
    except Refused as exc:
        raise CheckpointError(_refusal(path, exc)) from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return  # unreadable: torch's reader says what is wrong


def _refusal(path: str, exc: Exception) -> str:
    return (f"{path} is refused: its pickle holds {exc}, which torch.save never writes and "
            "which would take far more memory or time than the file's size")


def _load_restricted(path: str, legacy: bool):
    """Our every-opcode unpickler with torch's allowlist, for what torch's own cannot read."""
    try:
        return _torch_load(path, mmap=not legacy and stored_only(path),
                           pickle_module=restricted_pickle)
    except restricted_pickle.NeedsGlobal as exc:
        raise UnsafePickleError(path, [exc.name]) from None
    except RecursionError:
        raise CheckpointError(f"{path} is corrupt: its pickle nests too deeply") from None
    except MemoryError:
        raise CheckpointError(f"{path} is corrupt: its pickle asks for more memory than there is") from None
    except Exception as exc:  # any opcode sequence a valid checkpoint never holds
        raise CheckpointError(f"{path} is truncated or corrupt: {type(exc).__name__}: "
                              f"{_first_line(exc)}") from None


def _torch_load(path: str, mmap: bool, pickle_module=None):
    kw = ({"weights_only": True} if pickle_module is None
          else {"weights_only": False, "pickle_module": pickle_module})
    try:
        return _torch_load_to(path, mmap, _paced_cpu(Pacer()), kw)
    except RuntimeError as exc:  # a device tensor rebuilt from numpy wants a device name
        if "Callable map_location" not in str(exc):
            raise
    return _torch_load_to(path, mmap, "cpu", kw)


def _torch_load_to(path: str, mmap: bool, map_location, kw: dict):
    if path.endswith(".safetensors"):  # torch.load would hand such a name to safetensors
        with open(path, "rb") as f:
            return torch.load(f, map_location=map_location, **kw)
    return torch.load(path, map_location=map_location, mmap=mmap, **kw)


def _paced_cpu(pace: Pacer):
    """``map_location="cpu"``, called for every storage: the load lets other threads in."""
    def restore(storage, _location):
        pace()
        return torch.serialization.default_restore_location(storage, "cpu")
    return restore
