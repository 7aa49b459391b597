"""A registry over ``torch.nn.init``: each function's typed arguments, rank rule and generator use;
tensor selection like ``net.apply(fn)`` (one tensor, one module, a subtree filtered by module
type, weights / biases); and ``InitEdit``, which re-initialises tensors in place.

Qt-free. Arguments are plain JSON data (numbers, strings, and for ``gain`` either a number or
``{"nonlinearity": "relu", "param": null}`` resolved with ``torch.nn.init.calculate_gain``).
"""
from __future__ import annotations

# Split by job: the registry, argument checks, tensor selection and the edit. Every name stays
# importable from here.
from .init_args import check_applicable, resolve_args, resolve_gain, split_applicable
from .init_edit import InitEdit, SeededResetEdit, init_edit_from_step
from .init_registry import (CHOICE, FLOAT, FUNCTION_NAMES, GAIN, GLOBAL_RNG_FUNCTIONS, INT, REGISTRY,
                            ArgSpec, InitFunction, function, nonlinearities)
from .init_selection import (MAX_PATTERN, WHICH, dedupe_ties, find_module_node, is_norm_type,
                             match_module_types, module_filter_available, module_types_under,
                             norm_weights_left_out, select_tensors)
from .module_edits import ResetParametersEdit

__all__ = ["ArgSpec", "InitEdit", "InitFunction", "REGISTRY", "ResetParametersEdit",
           "SeededResetEdit", "check_applicable", "dedupe_ties", "find_module_node", "function",
           "init_edit_from_step", "is_norm_type", "match_module_types", "module_filter_available",
           "module_types_under", "nonlinearities", "norm_weights_left_out", "resolve_args",
           "resolve_gain", "select_tensors", "split_applicable"]
