"""Value edits: fill, expression, one cell, requires_grad, reset_parameters — all in place.

Every edit writes into the existing tensors under ``torch.no_grad()`` (the same ``Parameter``
object, the same storage), keeps only the old values of the region it touched, and edits tied
tensors once per storage while reporting every alias in ``touched()``. ``apply`` checks and
computes everything before it writes anything, so a UserError leaves the document unchanged.
Random expressions / ``reset_parameters`` replay the RNG state of their first run on redo, so
undo + redo gives back exactly the same values.
"""
from __future__ import annotations

# The edits live in files of one job each; these names stay importable from here.
from .module_edits import RequiresGradEdit, ResetParametersEdit
from .region_edits import CellEdit, ExprEdit, FillEdit, _chunk_pairs, _RegionEdit
from .undo_buffers import (_nbytes, _restore, _Rng, _save_old, _step_target, _storage_key, _units,
                           _write)
from .value_parsing import _fmt, _json_value, _not_a_number, _short, coerce_value, parse_cell_value

__all__ = ["CellEdit", "ExprEdit", "FillEdit", "RequiresGradEdit", "ResetParametersEdit",
           "coerce_value", "parse_cell_value"]
