"""The zip of a TorchScript archive and its module hierarchy, read without running its code.

The class sources under ``code/`` are parsed with ``ast`` (never executed) for their
``__parameters__`` / ``__buffers__`` lists; the unpickled module objects become ``ModuleStub``s
shaped like what ``tree.tree_from_module`` walks.
"""
from __future__ import annotations

import ast
import struct
import zipfile
from dataclasses import dataclass

from .torchscript_pickle import NotUnderstood, _ScriptObject, _TensorRef


# -- class sources: which attributes are parameters, which buffers ---------------------------

@dataclass
class _ClassInfo:
    is_module: bool
    parameters: list[str]
    buffers: list[str]


def _str_list(node: ast.expr) -> list[str]:
    if isinstance(node, (ast.List, ast.Tuple)) and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
        return [e.value for e in node.elts]
    raise NotUnderstood("__parameters__ / __buffers__ is not a list of names")


def _parse_classes(source: str) -> dict[str, _ClassInfo]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as exc:
        raise NotUnderstood(f"class source does not parse: {exc}") from None
    out = {}
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef):
            continue
        bases = [b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else ""
                 for b in cls.bases]
        info = _ClassInfo("Module" in bases, [], [])
        for stmt in cls.body:
            if isinstance(stmt, ast.FunctionDef) and stmt.name in ("__setstate__", "__getstate__"):
                raise NotUnderstood(f"class {cls.name} defines {stmt.name}")
            if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                    and isinstance(stmt.targets[0], ast.Name)):
                if stmt.targets[0].id == "__parameters__":
                    info.parameters = _str_list(stmt.value)
                elif stmt.targets[0].id == "__buffers__":
                    info.buffers = _str_list(stmt.value)
        out[cls.name] = info
    return out


# -- the module hierarchy, shaped like what tree.tree_from_module walks ----------------------

class ModuleStub:
    """A module of the archive: class name, parameters, buffers and children, in slot order.

    It answers what ``tree.tree_from_module`` asks of an ``nn.Module`` (``original_name``,
    ``named_parameters`` / ``named_buffers`` without recursion, ``_modules``).
    """

    def __init__(self, qualname: str):
        self.qualname = qualname
        self.original_name = qualname.rsplit(".", 1)[-1]
        self._parameters: dict[str, _TensorRef | None] = {}
        self._buffers: dict[str, _TensorRef | None] = {}
        self._modules: dict[str, ModuleStub] = {}

    def named_parameters(self, recurse: bool = False, remove_duplicate: bool = False):
        return iter(self._parameters.items())

    def named_buffers(self, recurse: bool = False, remove_duplicate: bool = False):
        return iter(self._buffers.items())


class _Archive:
    def __init__(self, zf: zipfile.ZipFile):
        self.zf = zf
        roots = [n[:-len("/data.pkl")] for n in zf.namelist()
                 if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(roots) != 1:
            raise NotUnderstood("no single <archive>/data.pkl")
        self.prefix = roots[0]
        self._sources: dict[str, dict[str, _ClassInfo]] = {}

    def read(self, name: str) -> bytes:
        try:
            return self.zf.read(f"{self.prefix}/{name}")
        except KeyError:
            raise NotUnderstood(f"no record {name}") from None

    def class_info(self, qualname: str) -> _ClassInfo:
        module, _, name = qualname.rpartition(".")
        if module not in self._sources:
            source = self.read("code/" + module.replace(".", "/") + ".py")
            self._sources[module] = _parse_classes(source.decode("utf-8"))
        try:
            return self._sources[module][name]
        except KeyError:
            raise NotUnderstood(f"no source for class {qualname}") from None

    def data_offset(self, key: str, nbytes: int) -> int:
        """Where the bytes of ``data/<key>`` start in the file (stored uncompressed)."""
        try:
            info = self.zf.getinfo(f"{self.prefix}/data/{key}")
        except KeyError:
            raise NotUnderstood(f"no record data/{key}") from None
        if info.compress_type != zipfile.ZIP_STORED or info.file_size < nbytes:
            raise NotUnderstood(f"record data/{key} is compressed or too short")
        fp = self.zf.fp
        fp.seek(info.header_offset)
        head = fp.read(30)
        if len(head) != 30 or head[:4] != b"PK\x03\x04":
            raise NotUnderstood(f"bad local header of data/{key}")
        name_len, extra_len = struct.unpack("<HH", head[26:30])
        return info.header_offset + 30 + name_len + extra_len


def _stub_refs(root: ModuleStub, seen: set[int] | None = None):
    """Every tensor of every module once (a shared module is walked once)."""
    seen = set() if seen is None else seen
    if id(root) not in seen:
        seen.add(id(root))
        yield from (r for r in (*root._parameters.values(), *root._buffers.values()) if r is not None)
        for child in root._modules.values():
            yield from _stub_refs(child, seen)


def _stub_tree(archive: _Archive, root: _ScriptObject) -> ModuleStub:
    stubs: dict[int, ModuleStub] = {}

    def stub(obj: _ScriptObject) -> ModuleStub:
        if id(obj) in stubs:  # a submodule used at several places: one stub, like one module
            return stubs[id(obj)]
        info = archive.class_info(obj.qualname)
        if not info.is_module or not isinstance(obj.state, dict):
            raise NotUnderstood(f"{obj.qualname} is not a module built from an attribute dict")
        s = stubs[id(obj)] = ModuleStub(obj.qualname)
        for attr, value in obj.state.items():
            if not isinstance(attr, str):
                raise NotUnderstood(f"attribute name {attr!r}")
            if attr in info.parameters or attr in info.buffers:
                if value is not None and not isinstance(value, _TensorRef):
                    raise NotUnderstood(f"{obj.qualname}.{attr} is not a tensor")
                (s._parameters if attr in info.parameters else s._buffers)[attr] = value
            elif isinstance(value, _ScriptObject) and archive.class_info(value.qualname).is_module:
                s._modules[attr] = stub(value)
        return s

    if not isinstance(root, _ScriptObject):
        raise NotUnderstood("data.pkl does not hold a module")
    return stub(root)
