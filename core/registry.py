"""A registry of plug-ins (drivers, transports) whose modules are imported when first asked for,
so a station loads only what its configuration names.

Each entry names two objects as ``"module:attribute"``: the section's config model and the
implementation. They live in different modules (``drivers/<name>/config.py``,
``agent/transports/<type>/config.py``), so validating a configuration imports the models alone
and no driver or transport implementation (pymodbus, pyserial, paho, http.client).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar, cast

C = TypeVar("C")
F = TypeVar("F")


def _load(target: str) -> object:
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


class LazyRegistry(Generic[C, F]):
    """Name -> config model and implementation, from ``name -> ("module:Model",
    "module:Implementation")``; iterating gives the names, ``in`` asks for one."""

    def __init__(self, entries: Mapping[str, tuple[str, str]]) -> None:
        self._entries = dict(entries)

    def config(self, name: str) -> C:
        """The config model of ``name`` (imports its config module only)."""
        return cast(C, _load(self._entries[name][0]))

    def implementation(self, name: str) -> F:
        """The implementation of ``name`` (imports its module)."""
        return cast(F, _load(self._entries[name][1]))

    def module_of(self, name: str) -> str:
        """The module the implementation of ``name`` is loaded from (without importing it)."""
        return self._entries[name][1].partition(":")[0]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
