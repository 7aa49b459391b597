"""Our own weights-only unpickler, for pickles torch's cannot read (Python 2 era opcodes).

torch's weights-only unpickler implements the opcodes ``torch.save`` writes today; older files
(protocol 0/1 text opcodes such as ``INT``, ``LONG``, ``STRING``, ``DICT``) stop it with
``Unsupported operand``. Python's own pure-Python unpickler knows every opcode; this one keeps
it and restricts what it may touch to exactly what torch's weights-only mode allows:

- ``find_class`` (GLOBAL, STACK_GLOBAL, INST, EXT) returns only globals in torch's allowlist
  (``_get_allowed_globals``) or the user allowlist (``torch.serialization.safe_globals``, which
  the caller fills with the numpy globals torch documents as safe); any other name raises
  ``NeedsGlobal`` with the name;
- REDUCE, NEWOBJ, NEWOBJ_EX, OBJ and INST call only allowlisted callables;
- BUILD changes only what torch's unpickler lets it change (tensors, parameters, OrderedDicts,
  allowlisted types).

It is passed to ``torch.load(..., weights_only=False, pickle_module=restricted_pickle)``, so
torch's own persistent-load and storage code is reused; only the unpickler is ours.
"""
from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING

import torch

from .bounded_unpickler import BoundedUnpickler

UnpicklingError = pickle.UnpicklingError


class NeedsGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the weights-only allowlist."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"the pickle needs {name}, which is outside torch's weights-only allowlist")


def _allowed() -> dict[str, object]:
    from torch import _weights_only_unpickler as wo
    return {**wo._get_allowed_globals(), **wo._get_user_allowed_globals()}


def _contains(values, obj) -> bool:
    return any(obj is v for v in values)


class Unpickler(BoundedUnpickler):  # the pure-Python one: every opcode, overridable
    def __init__(self, file, *, fix_imports=True, encoding="ASCII", errors="strict", buffers=None):
        super().__init__(file, fix_imports=fix_imports, encoding=encoding, errors=errors,
                         buffers=buffers)
        self._allowed = _allowed()
        self._callables = list(self._allowed.values())

    def find_class(self, module, name):
        if not isinstance(module, str) or not isinstance(name, str):
            raise NeedsGlobal(f"{module!r}.{name!r}")
        if self.proto < 3 and self.fix_imports:
            if (module, name) in NAME_MAPPING:
                module, name = NAME_MAPPING[(module, name)]
            elif module in IMPORT_MAPPING:
                module = IMPORT_MAPPING[module]
        obj = self._allowed.get(f"{module}.{name}")
        if obj is None:
            raise NeedsGlobal(f"{module}.{name}")
        return obj

    def _check_callable(self, func) -> None:
        if not _contains(self._callables, func):
            raise UnpicklingError(f"the pickle calls {func!r}, which is not allowlisted")

    dispatch = dict(BoundedUnpickler.dispatch)

    def load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        self._check_callable(func)
        self.stack[-1] = func(*args)

    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_newobj(self):
        args = self.stack.pop()
        cls = self.stack.pop()
        self._check_callable(cls)
        self.append(torch.nn.Parameter(*args) if cls is torch.nn.Parameter
                    else cls.__new__(cls, *args))

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self):
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self._check_callable(cls)
        self.append(cls.__new__(cls, *args, **kwargs))

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def _instantiate(self, klass, args):
        self._check_callable(klass)
        self.append(klass(*args))

    def load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        kind = type(inst)
        if kind is torch.Tensor:
            inst.set_(*state)
        elif kind is torch.nn.Parameter:
            inst.__setstate__(state)
        elif kind is OrderedDict:
            inst.__dict__.update(state)
        elif _contains(self._callables, kind):
            if hasattr(inst, "__setstate__"):
                inst.__setstate__(state)
            else:
                slotstate = None
                if isinstance(state, tuple) and len(state) == 2:
                    state, slotstate = state
                if state:
                    inst.__dict__.update(state)
                for k, v in (slotstate or {}).items():
                    setattr(inst, k, v)
        else:
            raise UnpicklingError(f"the pickle sets the state of a {kind.__name__}, "
                                  "which weights-only loading does not allow")

    dispatch[pickle.BUILD[0]] = load_build


def load(file, **kw):
    return Unpickler(file, **kw).load()


def loads(data: bytes, **kw):
    return Unpickler(io.BytesIO(data), **kw).load()


__all__ = ["Unpickler", "UnpicklingError", "NeedsGlobal", "load", "loads"]
