"""What a module owns, changed as undoable Edits: add a parameter or buffer, promote a buffer to
a ``Parameter`` or demote one, tie and untie, train / eval on a subtree.

Ties rebind by definition (``head.weight = embed.weight``): undo puts the original ``Parameter``
object back. Everything else keeps tensor objects and storage; ``Parameter(buffer)`` and
``param.detach()`` view the same memory.
"""
from __future__ import annotations

import torch

from .base import Edit
from ..errors import UserError
from ..model.tensor_entry import BUFFER, PARAMETER
from ..model.ties import link_aliases, tie_group
from ..model.tree import module_entries

KINDS = (PARAMETER, BUFFER)
MAX_NEW_NUMEL = 1 << 27  # made on the GUI thread: keep it quick


def rescan(doc) -> None:
    """Read a live document's entries and tree again from its module (after a structure change)."""
    if doc.module is None:
        raise UserError("only a live model has modules to register tensors on")
    entries = module_entries(doc.module)
    link_aliases(entries)
    doc.tensors = {e.name: e for e in entries}
    doc.revision += 1
    doc.build_tree()


def module_at(doc, path: str) -> torch.nn.Module:
    if doc.module is None:
        raise UserError("only a live model has modules")
    try:
        return doc.module.get_submodule(path)
    except AttributeError as exc:
        raise UserError(f"no module named {path!r}") from exc


def validate_name(module: torch.nn.Module, name, kind: str = PARAMETER) -> str | None:
    """Why ``register_parameter`` / ``register_buffer`` would refuse ``name`` (their messages),
    or None. An existing parameter or buffer of that name is refused too: adding never replaces."""
    what = "parameter" if kind == PARAMETER else "buffer"
    if not isinstance(name, str):
        return f"{what} name should be a string. Got {torch.typename(name)}"
    if "." in name:
        return f'{what} name can\'t contain "."'
    if name == "":
        return f'{what} name can\'t be empty string ""'
    if hasattr(module, name):
        return f"attribute '{name}' already exists"
    return None


def _owner_attr(doc, name: str):
    e = doc.entry(name)
    if e.owner is None or e.attr is None:
        raise UserError(f"{name} does not belong to a live module")
    return e.owner, e.attr


class _Structural(Edit):
    structural = True

    def recipe_step(self) -> dict:
        raise NotImplementedError("this edit changes a live module; it has no recipe step")

    def recipe_steps(self) -> list[dict]:
        return []


class AddTensorEdit(_Structural):
    """``module.register_parameter(name, Parameter(t))`` or ``register_buffer(name, t,
    persistent)``, with ``t`` of ``shape`` and ``dtype`` filled by a ``torch.nn.init`` function."""

    def __init__(self, module_path: str, name: str, shape, dtype: torch.dtype, kind: str = PARAMETER,
                 init: str = "zeros_", persistent: bool = True, seed: int | None = None):
        if kind not in KINDS:
            raise UserError(f"kind must be one of {', '.join(KINDS)}")
        shape = tuple(int(s) for s in shape)
        if any(s < 0 for s in shape) or len(shape) > 8:
            raise UserError(f"bad shape {shape}: at most 8 sizes, none negative")
        numel = 1
        for s in shape:
            numel *= s
        if numel > MAX_NEW_NUMEL:
            raise UserError(f"{numel:,} elements is too many to add here (at most "
                            f"{MAX_NEW_NUMEL:,}); register it from Python")
        if kind == PARAMETER and not (dtype.is_floating_point or dtype.is_complex):
            raise UserError("only floating point and complex tensors can require gradients: "
                            "make it a buffer, or choose a floating dtype")
        self.module_path, self.name, self.shape, self.dtype = module_path, name, shape, dtype
        self.kind, self.init, self.persistent, self.seed = kind, init, bool(persistent), seed
        self._tensor: torch.Tensor | None = None

    @property
    def full_name(self) -> str:
        return f"{self.module_path}.{self.name}" if self.module_path else self.name

    @property
    def label(self) -> str:
        return f"Add {self.kind} {self.full_name} {list(self.shape)}"

    def _make(self, module) -> torch.Tensor:
        device = next((t.device for t in module.parameters()), None) or \
            next((t.device for t in module.buffers()), torch.device("cpu"))
        t = torch.zeros(self.shape, dtype=self.dtype, device=device)
        if self.init and self.init != "zeros_":
            fn = getattr(torch.nn.init, self.init, None)
            if fn is None or not self.init.endswith("_") or self.init.startswith("_"):
                raise UserError(f"unknown initializer {self.init!r}")
            kw = {}
            if self.seed is not None:
                kw["generator"] = torch.Generator(device=device).manual_seed(int(self.seed))
            try:
                with torch.no_grad():
                    fn(t, **kw)
            except (ValueError, RuntimeError, TypeError) as exc:
                raise UserError(f"{self.init} cannot fill a tensor of shape {list(self.shape)}: "
                                f"{exc}") from exc
        return torch.nn.Parameter(t) if self.kind == PARAMETER else t

    def apply(self, doc) -> None:
        module = module_at(doc, self.module_path)
        problem = validate_name(module, self.name, self.kind)
        if problem:
            raise UserError(problem)
        if self._tensor is None:  # redo registers the very same tensor again
            self._tensor = self._make(module)
        if self.kind == PARAMETER:
            module.register_parameter(self.name, self._tensor)
        else:
            module.register_buffer(self.name, self._tensor, persistent=self.persistent)
        rescan(doc)

    def revert(self, doc) -> None:
        module = module_at(doc, self.module_path)
        module._parameters.pop(self.name, None)
        module._buffers.pop(self.name, None)
        module._non_persistent_buffers_set.discard(self.name)
        rescan(doc)

    def touched(self) -> list[str]:
        return [self.full_name]


def plain_tensor_attributes(module: torch.nn.Module) -> list[str]:
    """Tensors set as plain attributes (``self.mask = torch.ones(3)`` on a module whose class
    never registered them): neither parameters nor buffers, so not in ``state_dict()``."""
    return [k for k, v in vars(module).items()
            if isinstance(v, torch.Tensor) and not isinstance(v, torch.nn.Parameter)
            and not k.startswith("__")]


class PromoteEdit(_Structural):
    """A buffer — or with ``module_path``, a plain tensor attribute of that module — becomes a
    ``Parameter`` viewing the same memory (and goes back on undo)."""

    def __init__(self, name: str, module_path: str | None = None):
        self.name = name
        self.module_path = module_path
        self._saved = None

    @property
    def label(self) -> str:
        where = f"{self.module_path}.{self.name}" if self.module_path else self.name
        return f"Make {where} a Parameter"

    def apply(self, doc) -> None:
        if self.module_path is not None:
            self._promote_attribute(doc)
            return
        module, attr = _owner_attr(doc, self.name)
        buf = module._buffers.get(attr)
        if buf is None:
            raise UserError(f"{self.name} is not a buffer")
        if not (buf.dtype.is_floating_point or buf.dtype.is_complex):
            raise UserError(f"{self.name} is {buf.dtype}: only floating point and complex tensors "
                            "can require gradients")
        persistent = attr not in module._non_persistent_buffers_set
        self._saved = (module, attr, buf, persistent)
        del module._buffers[attr]
        module._non_persistent_buffers_set.discard(attr)
        module.register_parameter(attr, torch.nn.Parameter(buf.detach()))
        rescan(doc)

    def _promote_attribute(self, doc) -> None:
        module = module_at(doc, self.module_path)
        t = vars(module).get(self.name)
        if self.name not in plain_tensor_attributes(module):
            raise UserError(f"{self.module_path or 'the model'} has no plain tensor attribute "
                            f"{self.name!r}")
        if not (t.dtype.is_floating_point or t.dtype.is_complex):
            raise UserError(f"{self.name} is {t.dtype}: only floating point and complex tensors "
                            "can require gradients")
        self._saved = (module, self.name, t, None)
        del module.__dict__[self.name]
        module.register_parameter(self.name, torch.nn.Parameter(t.detach()))
        rescan(doc)

    def revert(self, doc) -> None:
        module, attr, buf, persistent = self._saved
        del module._parameters[attr]
        if persistent is None:  # it was a plain attribute
            module.__dict__[attr] = buf
        else:
            module.register_buffer(attr, buf, persistent=persistent)
        rescan(doc)


class DemoteEdit(_Structural):
    """A ``Parameter`` becomes a buffer (out of ``parameters()``: an optimizer built later never
    sees it); undo registers the very same ``Parameter`` object again."""

    def __init__(self, name: str, persistent: bool = True):
        self.name, self.persistent = name, bool(persistent)
        self._saved = None

    @property
    def label(self) -> str:
        return f"Make {self.name} a buffer"

    def apply(self, doc) -> None:
        module, attr = _owner_attr(doc, self.name)
        p = module._parameters.get(attr)
        if p is None:
            raise UserError(f"{self.name} is not a parameter")
        self._saved = (module, attr, p)
        del module._parameters[attr]
        module.register_buffer(attr, p.detach(), persistent=self.persistent)
        rescan(doc)

    def revert(self, doc) -> None:
        module, attr, p = self._saved
        module._buffers.pop(attr, None)
        module._non_persistent_buffers_set.discard(attr)
        module.register_parameter(attr, p)
        rescan(doc)


class TrainModeEdit(_Structural):
    """``module.train(mode)`` on a subtree; undo restores each module's own flag. The tree
    reads the flags live, so nothing is rebuilt."""

    structural = False

    def __init__(self, module_path: str, training: bool):
        self.module_path, self.training = module_path, bool(training)
        self._saved: list[tuple[torch.nn.Module, bool]] = []

    @property
    def label(self) -> str:
        return f"{'train()' if self.training else 'eval()'} on {self.module_path or 'the model'}"

    def apply(self, doc) -> None:
        module = module_at(doc, self.module_path)
        self._saved = [(m, m.training) for m in module.modules()]
        module.train(self.training)

    def revert(self, doc) -> None:
        for m, flag in self._saved:
            m.training = flag


def parameter_counts(module: torch.nn.Module) -> dict[str, int]:
    """The figures PyTorch itself gives."""
    params = list(module.parameters())
    return {"named_parameters": len(list(module.named_parameters())),
            "named_parameters_all": len(list(module.named_parameters(remove_duplicate=False))),
            "numel": sum(p.numel() for p in params),
            "trainable": sum(p.numel() for p in params if p.requires_grad)}


def counts_text(module: torch.nn.Module) -> str:
    c = parameter_counts(module)
    text = f"{c['named_parameters']} parameters"
    if c["named_parameters_all"] != c["named_parameters"]:
        text += f" ({c['named_parameters_all']} with remove_duplicate=False)"
    return text + f" · {c['numel']:,} elements ({c['trainable']:,} trainable)"
