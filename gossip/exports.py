"""Lazy re-exports for a package's ``__init__``: a name is imported from its module when first read (PEP 562).

Why: the packages that hold a process's heavy parts (torch, ZeroMQ, the launcher) are also imported for
their light modules — ``gossip node --help`` reads the node daemon's flags, a fork server preloads only
what a node needs. An ``__init__`` that imported its public names eagerly would make every one of those
imports pay for the whole package. With this, ``from gossip.node import Node`` still works, and
``import gossip.node.daemon`` imports the daemon alone.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, namespace: dict[str, Any], exports: Mapping[str, tuple[str, ...]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose public names live in the modules ``exports`` maps.

    The package states its ``__all__`` as a literal list (what linters and readers see); the test of the
    public API checks that every name in it resolves.

    ``namespace`` is the package's ``globals()``: a name read once is stored there, so the next read is a
    plain attribute lookup.
    """
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__
