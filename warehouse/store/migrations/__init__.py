"""Versioned schema migrations, one directory per backend: ``NNNN_name.sql`` files applied in
order, each in its own transaction with its row in ``schema_migrations``. An applied file is
never edited: a change is a new file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
    "name TEXT NOT NULL, applied_at TEXT NOT NULL)"
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(backend: str) -> list[Migration]:
    """Every migration of ``backend`` (``sqlite`` or ``postgres``), oldest first."""
    out = []
    for entry in resources.files(__package__).joinpath(backend).iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            out.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(out, key=lambda m: m.version)


def latest(backend: str) -> int:
    """The schema version a store of ``backend`` has once migrated."""
    return migrations(backend)[-1].version
