"""Lazy package exports (PEP 562 module ``__getattr__``).

A package's ``__init__`` names what it exports and the module each name lives
in; a module is imported on the first use of one of its names, so importing the
package (e.g. for config discovery of ``<package>.settings``) stays light::

    __getattr__ = lazy_exports(__name__, {"AuthService": ".service", ...})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: name -> the module (relative to ``package``) defining it."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module, package), name)

    return __getattr__
