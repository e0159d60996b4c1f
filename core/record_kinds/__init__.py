"""The record kinds the project ships: one module per kind, each registering itself when imported
(see core.records). Importing one kind's module imports that kind alone (``status`` reads the
``rotation`` kind's name and builds no other model; issue 33); ``load_all`` imports every one.

Add a kind: its module name in ``BUILTIN`` below.
"""

from __future__ import annotations

import importlib

BUILTIN = ("config", "descriptor", "health", "maintenance", "missed_polls", "rotation")


def load_all() -> None:
    """Import (so register) every record kind the project ships."""
    for name in BUILTIN:
        importlib.import_module(f"core.record_kinds.{name}")
