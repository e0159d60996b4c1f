"""Import pymodbus without asyncio: ``pymodbus.pdu.pdu`` imports asyncio for one annotation it
never evaluates (``self.fut: asyncio.Future`` inside a function), and the synchronous framing and
decoding this driver uses (``wire.py``) touches nothing else of it.

asyncio and its 29 modules (subprocess, selectors...) cost the running agent ~1.4 MiB of RSS
(bench/RESULTS.md, issue 33). While pymodbus is imported, a stand-in is ``sys.modules
["asyncio"]``; it stays bound to the name ``asyncio`` inside pymodbus, and the first attribute
anyone reads through it imports the real asyncio and answers from it, so nothing changes if a
later pymodbus uses it. Every other ``import asyncio`` gets the real module.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _AsyncioOnFirstUse(types.ModuleType):
    """Stands for asyncio; its first attribute read imports the real one."""

    def __getattr__(self, name: str) -> Any:
        if sys.modules.get("asyncio") is self:  # read while pymodbus is being imported
            del sys.modules["asyncio"]
        return getattr(importlib.import_module("asyncio"), name)


@contextmanager
def asyncio_on_first_use() -> Iterator[None]:
    """Within: ``import asyncio`` binds a stand-in (unless asyncio is imported already)."""
    if "asyncio" in sys.modules:
        yield
        return
    stand_in = _AsyncioOnFirstUse("asyncio")
    sys.modules["asyncio"] = stand_in
    try:
        yield
    finally:
        if sys.modules.get("asyncio") is stand_in:
            del sys.modules["asyncio"]
