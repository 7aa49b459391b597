"""``import app`` inside the repository checkout: the same objects as ``import paramedit``.

The source folder is ``app/`` (the project's layout) but the installed import name is
``paramedit``, so that a user's own top-level ``app`` package never collides with ours. Inside the
checkout ``import app`` keeps working: the ``paramedit`` package is loaded from this folder and
every ``app.x`` import resolves to the module ``paramedit.x`` (one module object, not two).
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

NAME = "paramedit"


# The import protocols are duck-typed: importlib.abc would cost ~25 ms of a start-up.
class _AliasLoader:
    def __init__(self, module: ModuleType):
        self.module = module
        self.spec = module.__spec__

    def create_module(self, spec):
        return self.module

    def get_code(self, fullname):  # ``python -m app``: runpy runs the real module's code as __main__
        return self.spec.loader.get_code(self.spec.name)

    def exec_module(self, module):
        # importlib has just set ``__spec__`` to the alias's spec; put the module's own back, so
        # that its relative imports keep ``__package__ == __spec__.parent`` (else ImportWarning)
        module.__spec__ = self.spec


class _AliasFinder:
    def __init__(self, alias: str):
        self.prefix = alias + "."

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(self.prefix):
            return None
        module = importlib.import_module(NAME + fullname[len(self.prefix) - 1:])
        return importlib.util.spec_from_loader(fullname, _AliasLoader(module))


def become_paramedit(alias: str, init_file: str, search_path: list[str]) -> ModuleType:
    """Load (or reuse) ``paramedit`` from this folder and make ``alias`` and ``alias.*`` point to it."""
    package = sys.modules.get(NAME)
    if package is None:
        spec = importlib.util.spec_from_file_location(NAME, init_file,
                                                      submodule_search_locations=search_path)
        package = importlib.util.module_from_spec(spec)
        sys.modules[NAME] = package
        spec.loader.exec_module(package)
    if not any(isinstance(f, _AliasFinder) and f.prefix == alias + "." for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder(alias))
    sys.modules[alias] = package
    return package
