"""Lazy exports for the package's ``__init__`` files: one helper, so every namespace behaves alike.

Why lazy: the pytest plugin loads at every pytest start-up, in every project that installed it,
and most of the package needs numpy. A namespace ``__init__`` therefore names its public objects
and the module each lives in, and imports that module only when a name is first used.

Each ``__init__`` does::

    __all__ = ["OracleAgent", ...]
    __getattr__, __dir__ = exports(__name__, {"OracleAgent": ".oracle", ...})

and, for type checkers and IDEs, imports the same names under ``if TYPE_CHECKING:``. A name in
``deprecated`` still resolves, with a :class:`DeprecationWarning` that names its new import path,
but is neither in ``__all__`` nor in ``dir()``.

>>> import sys, types, warnings
>>> demo = sys.modules["demo"] = types.ModuleType("demo")
>>> demo.__getattr__, demo.__dir__ = exports("demo", {"sqrt": "math"},
...                                          deprecated={"root": ("math", "sqrt")})
>>> demo.sqrt(9.0), dir(demo)
(3.0, ['sqrt'])
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     demo.root(4.0)
2.0
>>> print(caught[0].message)
demo.root is deprecated: use `from math import sqrt`
>>> del sys.modules["demo"]
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["exports"]


def exports(package: str, names: Mapping[str, str], *,
            deprecated: Mapping[str, tuple[str, str]] | None = None
            ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the module ``package``.

    ``names`` maps each public name to the module defining it, relative to ``package``
    (``".oracle"``) or absolute. ``deprecated`` maps an old name to ``(new module, new name)``:
    it resolves with a ``DeprecationWarning`` pointing at the caller's line. A resolved public
    name is cached in the module, so ``__getattr__`` runs once per name.
    """
    public = dict(names)
    old = dict(deprecated or {})

    def __getattr__(name: str) -> Any:
        module = public.get(name)
        if module is not None:
            value = getattr(importlib.import_module(module, package), name)
            setattr(sys.modules[package], name, value)
            return value
        if name in old:
            where, new = old[name]
            warnings.warn(f"{package}.{name} is deprecated: use `from {where} import {new}`",
                          DeprecationWarning, stacklevel=2)
            return getattr(importlib.import_module(where), new)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(public) | set(getattr(sys.modules[package], "__all__", ())))

    return __getattr__, __dir__
