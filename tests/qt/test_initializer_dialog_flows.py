"""The initializer dialog reads its numbers as core reads a float64 cell (value_parsing)."""
from __future__ import annotations

import pytest

from app.core.errors import UserError
from app.qt.dialogs.initializer_dialog import _float


def test_arguments_are_parsed_like_core_cells():
    assert _float(" 0.5 ", "std") == 0.5 and _float("-inf", "a") == float("-inf")
    with pytest.raises(UserError, match="std must be a number, not 'abc'"):
        _float("abc", "std")
    with pytest.raises(UserError, match="std: 1e999 is too large for float64"):
        _float("1e999", "std")  # float() alone gives inf silently
