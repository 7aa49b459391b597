"""Value edits: fill, expression, one cell, requires_grad, reset_parameters — all in place.

Every edit writes into the existing tensors under ``torch.no_grad()`` (the same ``Parameter``
object, the same storage), keeps only the old values of the region it touched, and edits tied
tensors once per storage while reporting every alias in ``touched()``. ``apply`` checks and
computes everything before it writes anything, so a UserError leaves the document unchanged.
Random expressions / ``reset_parameters`` replay the RNG state of their first run on redo, so
undo + redo gives back exactly the same values.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import torch

from ..model.document import Document
from .base import Edit
from ..errors import UserError
from ..expressions.env import NO_REFERENCE, Env
from ..expressions.expr import compile_expr, evaluate, evaluate_mask, fit_result
from ..expressions.index_text import check_index, format_index, parse_index
from ..model.dtypes import FLOAT8, edit_refusal, is_quantized, is_raw
from ..model.tensor_entry import PARAMETER, dtype_name


# -- values ------------------------------------------------------------------------------------

def _fmt(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _json_value(value):
    """Recipes are JSON: a complex value is written as the text that parses back to it."""
    return str(value).strip("()") if isinstance(value, complex) else value


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _not_a_number(text: str) -> UserError:
    return UserError(f"{text!r} is not a number; type e.g. 0.5 or 1e-3")


def coerce_value(value, dtype: torch.dtype):
    """A Python number checked against ``dtype``: whole and in range for integers, 0/1 for bool,
    finite values that fit for floats. Strings go through ``parse_cell_value``."""
    if isinstance(value, str):
        return parse_cell_value(value, dtype)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    name = dtype_name(dtype)
    if is_raw(dtype) or is_quantized(dtype):
        raise UserError(f"{name} tensors cannot be edited: torch defines no in-place writes "
                        f"of their values")
    if isinstance(value, complex):
        if dtype.is_complex:
            return value
        if value.imag:
            raise UserError(f"{value} is complex; {name} tensors hold real numbers")
        value = value.real
    if not isinstance(value, (bool, int, float)):
        raise UserError(f"{value!r} is not a number; give e.g. 0.5 or 1e-3")
    if dtype == torch.bool:
        if value in (0, 1):
            return bool(value)
        raise UserError(f"{_fmt(value)} is not true or false; {name} tensors take true, false, 1 or 0")
    if dtype.is_complex:
        return complex(value)
    if dtype.is_floating_point:
        v = float(value)
        # fp8 kinds have no isfinite: check the value they would store, read back as float32
        stored = torch.tensor(v, dtype=torch.float64).to(dtype).to(torch.float32)
        saturated = dtype in FLOAT8 and abs(v) > float(torch.finfo(dtype).max)
        if math.isfinite(v) and (saturated or not torch.isfinite(stored)):
            raise UserError(f"{v:g} is too large for {name} (largest is "
                            f"{float(torch.finfo(dtype).max):g}"
                            + (", no negative values" if float(torch.finfo(dtype).min) > 0 else "")
                            + ")")
        return v
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise UserError(f"{_fmt(value)} is not a whole number; {name} tensors hold integers")
    v = int(value)
    info = torch.iinfo(dtype)
    if not info.min <= v <= info.max:
        raise UserError(f"{v} is out of range for {name} ({info.min} to {info.max})")
    return v


def parse_cell_value(text: str, dtype: torch.dtype):
    """Text typed into a grid cell -> a Python scalar valid for ``dtype`` (UserError otherwise)."""
    raw = str(text).strip()
    if not raw:
        raise UserError("type a value, e.g. 0.5")
    if dtype == torch.bool:
        low = raw.lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        raise UserError(f"{raw!r} is not true or false; type true, false, 1 or 0")
    if dtype.is_complex:
        try:
            return complex(raw.replace(" ", ""))
        except ValueError:
            raise UserError(f"{raw!r} is not a number; type e.g. 0.5 or 1+2j") from None
    if not dtype.is_floating_point:
        try:
            return coerce_value(int(raw, 10), dtype)
        except ValueError:
            pass
    try:
        v = float(raw)
    except ValueError:
        raise _not_a_number(raw) from None
    if math.isinf(v) and raw.lower().lstrip("+-") not in ("inf", "infinity"):
        raise UserError(f"{raw} is too large for {dtype_name(dtype)}")
    return coerce_value(v, dtype)


# -- shared machinery --------------------------------------------------------------------------

def _storage_key(t: torch.Tensor) -> tuple:
    return (t.device.type, t.untyped_storage().data_ptr())


def _units(doc: Document, names: list[str]) -> tuple[list[tuple[str, torch.Tensor]], list[str]]:
    """One ``(name, tensor)`` per distinct tensor, and every alias name, in order."""
    units, touched, seen = [], [], set()
    for n in names:
        if n not in doc.tensors:
            raise UserError(f"there is no tensor named {n!r}")
        if n in touched:
            continue
        touched.extend(a for a in doc.aliases(n) if a not in touched)
        t = doc.tensor(n)
        if id(t) not in seen:
            seen.add(id(t))
            units.append((n, t))
    return units, touched


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _write(saved: list[tuple[torch.Tensor, tuple, torch.Tensor]], news: list) -> None:
    """``t[idx] = new`` for each; on a failure, restores what was written and raises UserError."""
    done = 0
    try:
        with torch.no_grad():
            for (t, idx, _old), new in zip(saved, news):
                t[idx] = new
                done += 1
    except Exception as exc:
        with torch.no_grad():
            for t, idx, old in saved[:done]:
                t[idx] = old
        raise UserError(f"the edit could not be written: {str(exc).splitlines()[0]}") from None


def _restore(saved) -> None:
    with torch.no_grad():
        for t, idx, old in reversed(saved):
            t[idx] = old


def _save_old(t: torch.Tensor, idx: tuple) -> torch.Tensor:
    region = t[idx]
    if region.untyped_storage().data_ptr() == t.untyped_storage().data_ptr():
        region = region.clone()  # a view: copy just the region (advanced indexing already copied)
    return region


class _Rng:
    """Remembers the RNG state of the first run; later runs replay it without touching the global one."""

    def __init__(self) -> None:
        self.state = None

    @contextmanager
    def __call__(self, devices):
        cuda = sorted({d.index if d.index is not None else torch.cuda.current_device()
                       for d in devices if d.type == "cuda"})
        if self.state is None:
            self.state = (torch.get_rng_state(), [torch.cuda.get_rng_state(i) for i in cuda])
            yield
            return
        with torch.random.fork_rng(devices=cuda):
            torch.set_rng_state(self.state[0])
            for i, s in zip(cuda, self.state[1]):
                torch.cuda.set_rng_state(s, i)
            yield


def _step_target(step: dict, targets: list[str], glob: str | None) -> dict:
    """``target`` is the glob, the one name, or the first name plus a ``targets`` list."""
    if glob is not None:
        step["target"] = glob
    else:
        step["target"] = targets[0]
        if len(targets) > 1:
            step["targets"] = list(targets)
    return step


class _RegionEdit(Edit):
    """An edit of ``w[index]`` over one or more named tensors."""

    def __init__(self, targets, index: str | None = None, glob: str | None = None):
        self.targets = [targets] if isinstance(targets, str) else list(targets)
        if not self.targets:
            raise UserError("no tensor to edit")
        self.idx = parse_index(index)
        self.index = format_index(self.idx) or None
        self.glob = glob
        self._saved: list[tuple[torch.Tensor, tuple, torch.Tensor]] = []
        self._touched: list[str] = []

    def _what(self) -> str:
        if len(self.targets) == 1:
            return f"{self.targets[0]}{self.index or ''}"
        where = f"{self.index} of " if self.index else ""
        return f"{where}{len(self.targets)} tensors"

    def _prepare(self, doc: Document):
        units, touched = _units(doc, self.targets)
        for n, t in units:
            refusal = edit_refusal(t)
            if refusal is not None:
                raise UserError(f"{n}: {refusal}")
            try:
                check_index(self.idx, t.shape)
            except UserError as exc:
                raise UserError(f"{n}: {exc}") from None
        return units, touched

    def _commit(self, units, touched, news) -> None:
        with torch.no_grad():
            saved = [(t, self.idx, _save_old(t, self.idx)) for _n, t in units]
        _write(saved, news)
        self._saved, self._touched = saved, touched

    def revert(self, doc: Document) -> None:
        _restore(self._saved)
        self._saved = []

    def touched(self) -> list[str]:
        return list(self._touched)

    def memory_cost(self) -> int:
        return sum(_nbytes(old) for _t, _i, old in self._saved)

    def work_bytes(self, doc: Document) -> int:
        from .base import names_bytes
        return names_bytes(doc, self.targets)

    def _step(self, op: str, **keys) -> dict:
        step = _step_target({"op": op}, self.targets, self.glob)
        step.update({k: v for k, v in keys.items() if v is not None})
        if self.index is not None:
            step["index"] = self.index
        return step


class FillEdit(_RegionEdit):
    """``w[index] = value`` for every target."""

    def __init__(self, targets, value, index: str | None = None, glob: str | None = None):
        super().__init__(targets, index, glob)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                try:
                    value = complex(value.replace(" ", ""))
                except ValueError:
                    raise _not_a_number(value) from None
        if not isinstance(value, (bool, int, float, complex)):
            raise UserError(f"{value!r} is not a number; give e.g. 0.5 or 1e-3")
        self.value = value

    @property
    def label(self) -> str:
        return f"Fill {self._what()} with {_fmt(self.value)}"

    def apply(self, doc: Document) -> None:
        units, touched = self._prepare(doc)
        news = []
        for n, t in units:
            try:
                news.append(coerce_value(self.value, t.dtype))
            except UserError as exc:
                raise UserError(f"{n}: {exc}") from None
        self._commit(units, touched, news)

    def recipe_step(self) -> dict:
        return self._step("fill", value=_json_value(self.value))

    @classmethod
    def from_step(cls, step: dict, doc: Document, inputs=None) -> "FillEdit":
        from .steps import glob_of, resolve_targets
        return cls(resolve_targets(doc, step), step["value"], index=step.get("index"),
                   glob=glob_of(step))


class ExprEdit(_RegionEdit):
    """``w[index] = expr(w[index])``, optionally only where ``mask(w[index])`` holds.

    The old values are saved first (they are what undo needs); an elementwise expression (and
    mask) on a region that is a view of its tensor is then evaluated and written chunk by chunk,
    so the peak memory is the saved copy plus one chunk's temporaries. Anything else is evaluated
    whole. Any failure, a cancel, or an expression that changed ``w`` itself restores the saved
    values before the error is raised.
    """

    chunk_elements = 1 << 22  # 16 MiB of float32: smaller chunks cost time in page faults
    _current_env: Env | None = None

    def __init__(self, targets, expr: str, index: str | None = None, mask: str | None = None,
                 glob: str | None = None, ref: Document | None = None, ref_path: str | None = None,
                 ref_name: str = "ref"):
        super().__init__(targets, index, glob)
        self.expr = str(expr).strip()
        self._compiled = compile_expr(self.expr)
        self.mask = mask.strip() if isinstance(mask, str) and mask.strip() else None
        self._mask_compiled = compile_expr(self.mask) if self.mask is not None else None
        self._rng = _Rng()
        #: the document ``t["NAME"]`` reads (default: the one edited; a preview sets the original)
        self.source: Document | None = None
        self.ref = ref
        if "ref" in self.reads():
            if ref is None:
                raise UserError(f"expression `{self.expr}`: {NO_REFERENCE}")
            self.ref_name = ref_name  # the recipe input ref[...] reads (edits/steps.py)
            self.inputs = {ref_name: ref_path or ref.path or ""}  # recorded in exported recipes

    def reads(self) -> set[str]:
        """What the expression and mask read besides ``w``: ``"t"``, ``"ref"`` or neither."""
        found = self._compiled.sources()
        return found | (self._mask_compiled.sources() if self._mask_compiled is not None else set())

    def _env(self, doc: Document) -> Env:
        source = self.source or doc
        ref = self.ref
        return Env(tensors=source.tensor, ref=ref.tensor if ref is not None else None)

    @property
    def label(self) -> str:
        where = f" where {_short(self.mask)}" if self.mask else ""
        return f"Expression {_short(self.expr)} on {self._what()}{where}"

    def apply(self, doc: Document, progress=None, cancelled=None) -> None:
        """``progress(done, total)`` counts elements; ``cancelled()`` true raises Cancelled."""
        units, touched = self._prepare(doc)
        self._current_env = self._env(doc)
        with torch.no_grad():
            saved = [(t, self.idx, _save_old(t, self.idx)) for _n, t in units]
        try:
            with torch.no_grad(), self._rng([t.device for _n, t in units]):
                if self._chunkable(units):
                    self._apply_chunked(saved, progress, cancelled)
                else:
                    self._apply_whole(saved, cancelled)
        except BaseException:
            _restore(saved)
            raise
        self._saved, self._touched = saved, touched

    def _chunkable(self, units) -> bool:
        if not self._compiled.elementwise:
            return False
        if self._mask_compiled is not None and not self._mask_compiled.elementwise:
            return False
        if self.reads():
            return False  # other tensors are read whole: so is the region
        if any(isinstance(i, list) for i in self.idx):
            return False  # advanced indexing copies the region: no view to write chunks into
        keys = [_storage_key(t) for _n, t in units]
        if len(set(keys)) != len(keys):
            return False
        regions = [t[self.idx] for _n, t in units]
        return (any(r.numel() > self.chunk_elements for r in regions)
                and all(r.dim() > 0 and _storage_key(r) == k for r, k in zip(regions, keys)))

    def _new_values(self, t: torch.Tensor, region: torch.Tensor, cancelled) -> torch.Tensor:
        # fp8 has no arithmetic in torch: the expression sees float32 values, and its result is
        # rounded back to the tensor's dtype when written
        seen = region.to(torch.float32) if t.dtype in FLOAT8 else region
        env = self._current_env
        new = fit_result(self.expr, evaluate(self.expr, seen, cancelled, env=env), region.shape,
                         t.dtype, t.device)
        if self.mask is not None:
            new = torch.where(evaluate_mask(self.mask, seen, cancelled, env=env), new, region)
        if _storage_key(new) == _storage_key(t):
            new = new.clone()  # e.g. `w.t()`: never copy a tensor onto itself
        return new

    def _apply_whole(self, saved, cancelled) -> None:
        news = [self._new_values(t, t[idx], cancelled) for t, idx, _old in saved]
        _write(saved, news)

    def _apply_chunked(self, saved, progress, cancelled) -> None:
        total = sum(t[idx].numel() for t, idx, _old in saved)
        done = 0
        for t, idx, _old in saved:
            for view in _chunks(t[idx], self.chunk_elements):
                view.copy_(self._new_values(t, view, cancelled))
                done += view.numel()
                if progress is not None:
                    progress(done, total)

    def recipe_step(self) -> dict:
        step = self._step("expr", expr=self.expr, mask=self.mask)
        if getattr(self, "ref_name", "ref") != "ref":  # edits/steps.py: the input ref[...] reads
            step["ref"] = self.ref_name
        return step

    @classmethod
    def from_step(cls, step: dict, doc: Document, inputs=None) -> "ExprEdit":
        """An expr step; one that reads ``ref["NAME"]`` opens the input its ``ref`` key names
        (``ref`` by default)."""
        from .steps import glob_of, resolve_targets
        names = resolve_targets(doc, step)
        texts = [step["expr"], *([step["mask"]] if step.get("mask") else [])]
        ref = ref_path = None
        ref_name = step.get("ref", "ref")
        if inputs is not None and any("ref" in compile_expr(x).sources() for x in texts):
            ref, ref_path = inputs.document(ref_name), inputs.path(ref_name)
        edit = cls(names, step["expr"], index=step.get("index"), mask=step.get("mask"),
                   glob=glob_of(step), ref=ref, ref_path=ref_path, ref_name=ref_name)
        return edit


def _chunks(region: torch.Tensor, size: int):
    """Writable views that together cover ``region`` (a view), about ``size`` elements each."""
    if region.is_contiguous():
        flat = region.view(-1)
        for a in range(0, flat.numel(), size):
            yield flat[a:a + size]
        return
    rows = max(1, size // max(1, region[0].numel()))
    for a in range(0, region.shape[0], rows):
        yield region[a:a + rows]


class CellEdit(_RegionEdit):
    """One element ``w[i, j, ...] = value`` (grid edits)."""

    def __init__(self, name: str, index, value):
        index = tuple(int(i) for i in index)
        super().__init__([name], None)
        self.idx, self.index = index, format_index(index) or None
        self.value = value

    @property
    def label(self) -> str:
        return f"Set {self._what()} to {_fmt(self.value)}"

    def apply(self, doc: Document) -> None:
        units, touched = self._prepare(doc)
        (n, t), = units
        if len(self.idx) != t.dim():
            raise UserError(f"{n}: a cell needs {t.dim()} indices, not {len(self.idx)}")
        try:
            value = coerce_value(self.value, t.dtype)
        except UserError as exc:
            raise UserError(f"{n}: {exc}") from None
        self._commit(units, touched, [value])
        self.value = value  # text typed in a cell becomes the number it stands for

    def work_bytes(self, doc: Document) -> int:
        return 0  # one element

    def recipe_step(self) -> dict:
        value = self.value.item() if isinstance(self.value, torch.Tensor) else self.value
        return self._step("fill", value=_json_value(value))


# -- flags and modules -------------------------------------------------------------------------

class RequiresGradEdit(Edit):
    """Set ``requires_grad`` of the named Parameters (other tensors are skipped)."""

    def __init__(self, names, flag: bool, glob: str | None = None):
        self.targets = [names] if isinstance(names, str) else list(names)
        self.flag = bool(flag)
        self.glob = glob
        self._old: list[tuple[torch.nn.Parameter, bool]] = []
        self._touched: list[str] = []

    @property
    def label(self) -> str:
        what = self.targets[0] if len(self.targets) == 1 else f"{len(self.targets)} tensors"
        return f"{'Unfreeze' if self.flag else 'Freeze'} {what}"

    def apply(self, doc: Document) -> None:
        units, _ = _units(doc, self.targets)
        # TorchScript modules hand out their parameters as plain tensors: the entry knows.
        params = [(n, t) for n, t in units
                  if isinstance(t, torch.nn.Parameter) or doc.entry(n).kind == PARAMETER]
        if not params:
            raise UserError("requires_grad applies to parameters only, and none of the chosen "
                            "tensors is one")
        if self.flag:
            for n, t in params:
                if not (t.is_floating_point() or t.is_complex()):
                    raise UserError(f"{n} is {dtype_name(t.dtype)}; only floating point tensors "
                                    "can require gradients")
        self._old = [(t, t.requires_grad) for _n, t in params]
        self._touched = [a for n, _t in params for a in doc.aliases(n)]
        for t, _ in self._old:
            t.requires_grad_(self.flag)

    def revert(self, doc: Document) -> None:
        for t, flag in reversed(self._old):
            t.requires_grad_(flag)
        self._old = []

    def recipe_step(self) -> dict:
        return _step_target({"op": "requires_grad"}, self.targets, self.glob) | {"value": self.flag}

    @classmethod
    def from_step(cls, step: dict, doc: Document, inputs=None) -> "RequiresGradEdit":
        from .steps import glob_of, resolve_targets
        return cls(resolve_targets(doc, step), step["value"], glob=glob_of(step))

    def touched(self) -> list[str]:
        return list(self._touched)


class ResetParametersEdit(Edit):
    """``reset_parameters()`` of every module in the given subtrees of a live model."""

    def __init__(self, module_names, glob: str | None = None):
        self.modules = [module_names] if isinstance(module_names, str) else list(module_names)
        self.glob = glob
        self._saved: list[tuple[torch.nn.Module, str, torch.Tensor, torch.Tensor]] = []
        self._touched: list[str] = []
        self._rng = _Rng()

    @property
    def label(self) -> str:
        if len(self.modules) > 1:
            return f"Reset parameters of {len(self.modules)} modules"
        return f"Reset parameters of {self.modules[0] or 'the model'}"

    def _resettable(self, doc: Document) -> list[torch.nn.Module]:
        if doc.module is None:
            raise UserError("reset_parameters needs a live model; this document is a checkpoint "
                            "(use an init step instead)")
        found: dict[int, torch.nn.Module] = {}
        for name in self.modules:
            try:
                sub = doc.module.get_submodule(name)
            except AttributeError:
                raise UserError(f"the model has no module named {name!r}") from None
            hits = [m for m in sub.modules() if callable(getattr(m, "reset_parameters", None))]
            if not hits:
                raise UserError(f"{name or 'the model'} ({type(sub).__name__}) has no module "
                                "with a reset_parameters() method")
            found.update((id(m), m) for m in hits)
        return list(found.values())

    def apply(self, doc: Document) -> None:
        mods = self._resettable(doc)
        saved, seen = [], set()
        with torch.no_grad():
            for m in mods:
                for owner in m.modules():
                    tensors = [*owner._parameters.items(), *owner._buffers.items()]
                    for attr, t in tensors:
                        if t is not None and id(t) not in seen:
                            seen.add(id(t))
                            saved.append((owner, attr, t, t.detach().clone()))
            try:
                with self._rng([t.device for _o, _a, t, _c in saved]):
                    for m in mods:
                        m.reset_parameters()
            except Exception as exc:
                self._saved = saved
                self.revert(doc)
                raise UserError(f"reset_parameters failed: {str(exc).splitlines()[0]}") from None
        self._saved = saved
        ids = {id(t) for _o, _a, t, _c in saved}
        self._touched = [n for n, e in doc.tensors.items() if e.is_loaded and id(e.tensor()) in ids]

    def revert(self, doc: Document) -> None:
        with torch.no_grad():
            for owner, attr, t, old in reversed(self._saved):
                if getattr(owner, attr, None) is not t:  # a reset_parameters that rebinds
                    setattr(owner, attr, t)
                t.copy_(old)
        self._saved = []

    def recipe_step(self) -> dict:
        return _step_target({"op": "reset_parameters"}, self.modules, self.glob)

    @classmethod
    def from_step(cls, step: dict, doc: Document, inputs=None) -> "ResetParametersEdit":
        """A seeded step is an ``initializers.SeededResetEdit``."""
        from .steps import glob_of, resolve_modules
        seed = step.get("seed")
        if seed is not None:
            if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2 ** 63:
                raise UserError(f"reset_parameters: 'seed' must be a whole number >= 0, not {seed!r}")
            from .initializers import SeededResetEdit
            return SeededResetEdit(resolve_modules(doc, step), seed, glob=glob_of(step))
        return ResetParametersEdit(resolve_modules(doc, step), glob=glob_of(step))

    def touched(self) -> list[str]:
        return list(self._touched)

    def memory_cost(self) -> int:
        return sum(_nbytes(old) for *_x, old in self._saved)
