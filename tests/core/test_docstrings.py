"""The examples in the public classes' docstrings run as written."""
import doctest

import pytest

from app.core.edits import base, history


@pytest.mark.parametrize("module", [base, history], ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    failed, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failed == 0
