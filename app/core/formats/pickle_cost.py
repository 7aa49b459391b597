"""A pass over a pickle, before ``torch.load`` reads it, refusing what would cost far more than
its bytes: nothing is called, nothing is read.

torch's weights-only unpickler calls the constructors on its allowlist with whatever the pickle
gives them. Given a tensor, ``set``, ``collections.Counter``, ``OrderedDict``, ``bytearray`` or
``torch.Size`` iterate it: one object per element, 5e6 of them (3.4 GB) from a 1.2 KB file whose
tensor is viewed with stride 0. ``bytearray(n)`` allocates n bytes; one container handed to
such a constructor again and again, or one state BUILT into many objects, costs the square of
the pickle's length. ``torch.save`` writes none of these.

Here every global is a placeholder and every call's result opaque; only the calls of those
constructors are judged (their argument must be a list, tuple, dict or text built by the pickle
itself, consumed once; an int at most the pickle's length). Every other opcode builds plain data,
in time and memory in proportion to the pickle (``BoundedUnpickler``).
"""
from __future__ import annotations

import io
import pickle

from .bounded_unpickler import BoundedUnpickler
from .state_pickle_calls import Refused

#: allowlisted globals (torch's list, and the numpy ones) that iterate or size by an argument
_CONSTRUCTORS = {("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"),
                 ("builtins", "list"), ("builtins", "tuple"), ("builtins", "dict"),
                 ("collections", "Counter"), ("collections", "OrderedDict"),
                 ("collections", "deque"), ("torch", "Size")}
_PLAIN_ARGS = (list, tuple, dict, str, bytes)
#: a container of at most this many items may be handed over again (an encoding's name, a shape)
_SMALL = 64


def _file_size(f) -> int:
    import os
    try:
        return os.fstat(f.fileno()).st_size
    except (OSError, AttributeError, ValueError):
        return 1 << 30


class _Global:
    __slots__ = ("name",)

    def __init__(self, module: str, name: str):
        self.name = (module, name)


class _Made:
    """What a call would have returned (a tensor, an array, anything): opaque; filling it
    (SETITEMS into an ``OrderedDict()``, APPENDS, ADDITEMS) keeps nothing."""
    __slots__ = ()

    def __setitem__(self, key, value) -> None:
        pass

    def append(self, item) -> None:
        pass

    extend = add = update = append


class _Encoded(_Made):
    """``_codecs.encode(text, encoding)``: bytes as protocol 2 writes them, as long as the text."""
    __slots__ = ()


class _Scan(BoundedUnpickler):
    dispatch = dict(BoundedUnpickler.dispatch)

    def __init__(self, f, limit: int | None):
        super().__init__(f, encoding="utf-8")
        self._limit = limit if limit is not None else _file_size(f)
        self._used: set[int] = set()
        self._kept: list = []

    def _once(self, obj, what: str) -> None:
        """A container or text handed over once (a small one, whose reuse costs little, and
        the empty tuple, which is one object, may come again)."""
        if not isinstance(obj, (list, tuple, dict, str, bytes)) or len(obj) <= _SMALL:
            return
        if id(obj) in self._used:
            raise Refused(f"one {what} used twice")
        self._used.add(id(obj))
        self._kept.append(obj)

    def find_class(self, module, name):
        if module == "__builtin__":
            module = "builtins"
        return _Global(str(module), str(name))

    def persistent_load(self, pid):
        return _Made()

    def _call(self, func, args) -> _Made:
        if isinstance(func, _Global) and func.name in _CONSTRUCTORS:
            for arg in args if isinstance(args, tuple) else (args,):
                if type(arg) is int:
                    if arg > self._limit:
                        raise Refused(f"{'.'.join(func.name)}({arg})")
                elif not isinstance(arg, _PLAIN_ARGS) and type(arg) is not _Encoded:
                    raise Refused(f"{'.'.join(func.name)} built from a tensor or another object")
                else:
                    self._once(arg, f"argument of {'.'.join(func.name)}")
        if isinstance(func, _Global) and func.name == ("_codecs", "encode"):
            return _Encoded()
        return _Made()

    def load_reduce(self):
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    def load_newobj(self):
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    def load_newobj_ex(self):
        self.stack.pop()  # keyword arguments
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    def load_obj(self):
        args = self.pop_mark()
        self.append(self._call(args[0], tuple(args[1:])) if args else _Made())

    def load_inst(self):
        module = self.readline()[:-1].decode("ascii")
        name = self.readline()[:-1].decode("ascii")
        self.append(self._call(self.find_class(module, name), tuple(self.pop_mark())))

    def load_build(self):
        state = self.stack.pop()
        self._once(self.stack[-1], "object given its state")
        self._once(state, "state")

    def _extension(self, code: int):
        self.append(_Made())

    def load_ext1(self):
        self._extension(self.read(1)[0])

    def load_ext2(self):
        self._extension(int.from_bytes(self.read(2), "little"))

    def load_ext4(self):
        self._extension(int.from_bytes(self.read(4), "little"))

    for _op, _fn in ((pickle.REDUCE, load_reduce), (pickle.NEWOBJ, load_newobj),
                     (pickle.NEWOBJ_EX, load_newobj_ex), (pickle.OBJ, load_obj),
                     (pickle.INST, load_inst), (pickle.BUILD, load_build),
                     (pickle.EXT1, load_ext1), (pickle.EXT2, load_ext2), (pickle.EXT4, load_ext4)):
        dispatch[_op[0]] = _fn
    del _op, _fn


def check_cost(source, pickles: int = 1) -> None:
    """Raise ``Refused`` for a pickle (bytes, or a binary file holding ``pickles`` of them one
    after another) whose calls would cost far more than its bytes; anything this pass cannot
    follow (a malformed pickle) is left to the real unpickler to refuse."""
    f = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    for _ in range(pickles):
        scan = _Scan(f, len(source) if isinstance(source, (bytes, bytearray)) else None)
        try:
            scan.load()
        except Refused:
            raise
        except Exception:  # noqa: BLE001  (malformed: the unpickler that reads it says so)
            return
        finally:
            scan.memo.clear()
            scan.stack, scan.metastack, scan._kept = [], [], []
