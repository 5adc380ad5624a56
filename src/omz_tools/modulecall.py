"""Packages that are also functions: ``omz_tools.download`` and ``omz_tools.convert``.

``omz_tools/__init__.py`` resolves ``omz_tools.download`` lazily to the function; but importing any
submodule (``omz_tools.download.cache``) binds the *package* as that attribute of ``omz_tools``.
Making the package callable means ``omz_tools.download([...])`` works whichever object it is."""

from __future__ import annotations

import sys
import types
from typing import Callable


def make_callable(module_name: str, function: Callable) -> None:
    """Calling the module ``module_name`` calls ``function``."""
    class _CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return function(*args, **kwargs)

    sys.modules[module_name].__class__ = _CallableModule
