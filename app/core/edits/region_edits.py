"""Edits of ``w[index]``: fill, expression and one grid cell, in place with the old region saved."""
from __future__ import annotations

import torch

from ..errors import UserError
from ..expressions.env import NO_REFERENCE, Env
from ..expressions.expr import compile_expr, evaluate, evaluate_mask, fit_result
from ..expressions.index_text import check_index, format_index, parse_index
from ..model.document import Document
from ..threads import one_thread
from ..model.dtypes import FLOAT8, edit_refusal
from .base import Edit
from .undo_buffers import _nbytes, _restore, _Rng, _save_old, _step_target, _storage_key, _units, _write
from .value_parsing import _fmt, _json_value, _not_a_number, _short, coerce_value


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

    An elementwise expression (and mask) on a region that is a view of its tensor runs chunk by
    chunk: each chunk's old values are saved (undo needs them), evaluated and written while in
    cache, so the peak memory is the saved copy plus one chunk's temporaries and the time about
    the undo copy plus the expression. Anything else is evaluated whole. Any failure, a cancel, or an expression that changed ``w`` itself restores the saved
    values before the error is raised.
    """

    chunk_elements = 1 << 20  # 4 MiB of float32: a chunk, its result and its saved copy stay in cache
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
        if self._chunkable(units):
            self._apply_chunked(units, progress, cancelled)
            self._touched = touched
            return
        with torch.no_grad():
            saved = [(t, self.idx, _save_old(t, self.idx)) for _n, t in units]
        try:
            with torch.no_grad(), self._rng([t.device for _n, t in units]):
                self._apply_whole(saved, cancelled)
        except BaseException:
            _restore(saved)
            raise
        self._saved, self._touched = saved, touched

    def _chunkable(self, units) -> bool:
        if not self._compiled.elementwise or self._one_op_in_place(units):
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

    def _one_op_in_place(self, units) -> bool:
        """``w * 2``, ``torch.clamp(w, -1, 1)`` on floating-point tensors: the whole region is
        saved and then written by that one operation (``evaluate(out=)``), which makes no
        temporary and runs on torch's threads like ``clone()`` + the in-place operation."""
        top = self._compiled.top
        return (self.mask is None and top is not None and top.on_w_only
                and all((t.dtype.is_floating_point or t.dtype.is_complex) and t.dtype not in FLOAT8
                        for _n, t in units))

    def _new_values(self, t: torch.Tensor, region: torch.Tensor, cancelled,
                    into: bool = False) -> torch.Tensor | None:
        """The new values of ``region`` (a part of ``t``); with ``into`` (``region`` is a view of
        ``t`` that nothing else is computed from) they may be written straight into ``region``,
        and then None is returned."""
        # fp8 has no arithmetic in torch: the expression sees float32 values, and its result is
        # rounded back to the tensor's dtype when written
        seen = region.to(torch.float32) if t.dtype in FLOAT8 else region
        env = self._current_env
        out = region if into and self.mask is None else None
        got = evaluate(self.expr, seen, cancelled, env=env, out=out)
        if out is not None and got is out:
            return None
        new = fit_result(self.expr, got, region.shape, t.dtype, t.device)
        mask = None
        if self.mask is not None:
            mask = evaluate_mask(self.mask, seen, cancelled, env=env)
        if _storage_key(new) == _storage_key(t):
            new = new.clone()  # e.g. `w.t()`: never copy a tensor onto itself
        if mask is None:
            return new
        if not into:
            return torch.where(mask, new, region)
        if _storage_key(mask) == _storage_key(t):
            mask = mask.clone()  # a bool tensor's own values as the mask, seen through w.t()
        try:
            torch.where(mask, new, region, out=region)
        except Exception as exc:  # as _write says it: e.g. a tensor whose elements overlap
            raise UserError(f"the edit could not be written: {str(exc).splitlines()[0]}") from None
        return None

    def _apply_whole(self, saved, cancelled) -> None:
        keys = [_storage_key(t) for t, _idx, _old in saved]
        # values are written as they are computed only where no tensor can see another's change
        into = len(set(keys)) == len(keys) and (len(saved) == 1 or "t" not in self.reads())
        news = []
        for t, idx, _old in saved:
            region = t[idx]
            view = into and _storage_key(region) == _storage_key(t)
            news.append(self._new_values(t, region, cancelled, into=view))
        left = [(s, n) for s, n in zip(saved, news) if n is not None]
        _write([s for s, _n in left], [n for _s, n in left])

    def _apply_chunked(self, units, progress, cancelled) -> None:
        """One pass per chunk: save its old values, evaluate, write — while the chunk is in cache.

        The undo buffer is filled chunk by chunk as the region is written, so the edit costs
        about the copy undo needs plus the expression itself, with no extra pass over the tensor:
        the expression's last operation writes into the chunk itself where it can
        (``evaluate(out=)``), and a mask picks between new and old values in place.
        On any failure the chunks done so far are put back from the buffer.
        """
        with torch.no_grad():
            saved = [(t, self.idx, torch.empty_like(t[self.idx],
                                                    memory_format=torch.contiguous_format))
                     for _n, t in units]
        total = sum(old.numel() for _t, _i, old in saved)
        done, written = 0, []
        try:
            # one thread: an OpenMP barrier per operation per chunk costs more than it gains
            with torch.no_grad(), one_thread(), self._rng([t.device for _n, t in units]):
                for t, idx, old in saved:
                    for view, old_view in _chunk_pairs(t[idx], old, self.chunk_elements):
                        old_view.copy_(view)
                        written.append((view, old_view))
                        new = self._new_values(t, view, cancelled, into=True)
                        if new is not None:
                            view.copy_(new)
                        done += view.numel()
                        if progress is not None:
                            progress(done, total)
        except BaseException:
            with torch.no_grad():
                for view, old_view in reversed(written):
                    view.copy_(old_view)
            raise
        self._saved = saved

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


def _chunk_pairs(region: torch.Tensor, old: torch.Tensor, size: int):
    """``(view of region, view of old)`` pairs of about ``size`` elements covering ``region`` (a
    writable view) and ``old`` (a contiguous tensor of its shape) alike."""
    if region.is_contiguous():
        flat, flat_old = region.view(-1), old.view(-1)
        for a in range(0, flat.numel(), size):
            yield flat[a:a + size], flat_old[a:a + size]
        return
    rows = max(1, size // max(1, region[0].numel()))
    for a in range(0, region.shape[0], rows):
        yield region[a:a + rows], old[a:a + rows]


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
