"""A registry of plug-ins (drivers, transports) whose modules are imported when first asked for,
so a station loads only what its configuration names."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar, cast

C = TypeVar("C")
F = TypeVar("F")


class LazyRegistry(Mapping[str, tuple[C, F]], Generic[C, F]):
    """Name -> (config model, implementation), from ``name -> (module, config, impl)`` names."""

    def __init__(self, entries: Mapping[str, tuple[str, str, str]]) -> None:
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> tuple[C, F]:
        module_name, config_name, impl_name = self._entries[name]
        module = importlib.import_module(module_name)
        return cast(C, getattr(module, config_name)), cast(F, getattr(module, impl_name))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def module_of(self, name: str) -> str:
        """The module ``name`` is loaded from (without importing it)."""
        return self._entries[name][0]
