"""The warehouse's storage: one schema (``SCHEMA.md``), two backends (SQLite, PostgreSQL).

``open_store(url)`` gives a ``Store``; the intake (``warehouse.intake``) is its only writer of
batches, through ``Store.transaction(station)``, which locks the station's chain head for the
whole verify-and-store step.
"""

from __future__ import annotations

from warehouse.store.model import (
    Chain,
    ConfigDocument,
    Held,
    KeyRow,
    NeedPartitions,
    NewBatch,
    Refusal,
    Station,
    StationStatus,
    Store,
    StoreError,
)

__all__ = [
    "Chain",
    "ConfigDocument",
    "Held",
    "KeyRow",
    "NeedPartitions",
    "NewBatch",
    "Refusal",
    "Station",
    "StationStatus",
    "Store",
    "StoreError",
    "open_store",
]


def open_store(url: str, *, pool_size: int = 4) -> Store:
    """The store at ``url``: ``sqlite:///path/file.db`` (or a bare path) or a libpq
    ``postgresql://…`` URL. Raises StoreError when it cannot be opened."""
    if url.startswith(("postgresql://", "postgres://")):
        from warehouse.store.postgres import PostgresStore

        return PostgresStore(url, pool_size=pool_size)
    from warehouse.store.sqlite import SqliteStore

    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    return SqliteStore(path)
