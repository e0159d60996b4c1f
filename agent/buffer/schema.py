"""The buffer's schema: its version and the ordered migrations that get any buffer.db to it.

The version is ``PRAGMA user_version`` (schema 1, written before migrations existed, left it 0
and kept ``meta.schema_version = '1'``; a file with that row and ``user_version`` 0 is version
1). ``migrate`` applies, in order, each migration above the file's version, each in its own
``BEGIN IMMEDIATE`` transaction that also sets ``user_version``: a crash during a migration leaves
the file at the previous version, and the migration runs again at the next start. Migrations are
also idempotent, so one that must commit part-way (sqlite-utils' ``transform`` commits) is safe
to re-run. sqlite-utils is imported only when there is something to migrate (it costs memory the
daemon need not carry).

Versions:

1. tables channels, readings, batches, deliveries, devices, meta.
2. a reading is stored once per (channel, time_ms): copies removed, the oldest kept; unique
   index ``readings_time_channel`` (also the time order ``readings_between`` reads in);
   ``meta.schema_version`` removed (``user_version`` is the version).

A buffer written by a newer agent (higher version) is refused with a clear error.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agent.logs import event
from core.errors import StorageError

if TYPE_CHECKING:
    import sqlite_utils

log = logging.getLogger("agent.buffer")
TABLES = ("channels", "readings", "batches", "deliveries", "devices", "meta")


def _v1_tables(db: sqlite_utils.Database) -> None:
    db["channels"].create(
        {"id": int, "device": str, "param": str, "unit": str}, pk="id", if_not_exists=True
    )
    db["channels"].create_index(["device", "param", "unit"], unique=True, if_not_exists=True)
    db["readings"].create(
        {"id": int, "channel": int, "time_ms": int, "value": float, "status": int},
        pk="id",
        if_not_exists=True,
    )
    db["batches"].create(
        {
            "seq": int,
            "first_id": int,
            "last_id": int,
            "count": int,
            "sealed_at_ms": int,
            "header": str,
            "payload": bytes,
            "signature": str,
            "digest": str,
        },
        pk="seq",
        if_not_exists=True,
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS deliveries (transport TEXT, seq INTEGER, state INTEGER, "
        "at_ms INTEGER, detail TEXT, PRIMARY KEY (transport, seq)) WITHOUT ROWID"
    )
    db["devices"].create(
        {
            "name": str,
            "last_good_ms": int,
            "last_error": str,
            "last_error_ms": int,
            "polls": int,
            "faults": int,
        },
        pk="name",
        if_not_exists=True,
    )
    db["meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)


def _v2_readings_once(db: sqlite_utils.Database) -> None:
    # A datalogger re-sending a packet after a lost answer gave schema 1 two copies. Keep the
    # oldest (a sealed copy stays inside its signed batch, which is kept as it was).
    copies = db.execute(
        "DELETE FROM readings WHERE id NOT IN "
        "(SELECT min(id) FROM readings GROUP BY channel, time_ms)"
    ).rowcount
    db["readings"].create_index(
        ["time_ms", "channel"], index_name="readings_time_channel", unique=True, if_not_exists=True
    )
    db.execute("DELETE FROM meta WHERE key = 'schema_version'")
    if copies:
        event(log, logging.WARNING, "buffer_duplicate_readings_removed", copies=copies)


Migration = Callable[["sqlite_utils.Database"], None]
MIGRATIONS: list[Migration] = [_v1_tables, _v2_readings_once]  # MIGRATIONS[n-1] makes version n
SCHEMA_VERSION = len(MIGRATIONS)


def version_of(conn: sqlite3.Connection) -> int:
    """The schema version of the open file (0: empty)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == 0:
        has_meta = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        if has_meta:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
    return version


def _refuse_newer(version: int, path: Path) -> None:
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"{path}: buffer schema version {version} was written by a newer station-agent "
            f"(this one knows up to {SCHEMA_VERSION}); run that version, or restore its backup"
        )


def migrate(conn: sqlite3.Connection, path: Path) -> list[int]:
    """Bring the file to ``SCHEMA_VERSION``; returns the versions applied (often none)."""
    version = version_of(conn)
    _refuse_newer(version, path)
    if version == SCHEMA_VERSION:
        return []
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    applied = []
    for target in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[target - 1](db)
            if not conn.in_transaction:  # a step committed part-way (see the docstring)
                conn.execute("BEGIN IMMEDIATE")
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StorageError(
                    f"{path}: migrating the buffer to schema version {target} failed: {exc}; "
                    f"the file is left at version {target - 1} (free disk space and restart)"
                ) from None
            raise
        applied.append(target)
    if version:  # a new file is not news
        event(log, logging.INFO, "buffer_migrated", path=str(path), versions=applied)
    return applied


def check_readable(conn: sqlite3.Connection, path: Path) -> int:
    """For read-only opens: the file's version, after checking it is a buffer we can read.

    Readers use only what every version has (the tables of version 1), so an older file that
    the agent has not migrated yet is read as it is."""
    import sqlite_utils

    version = version_of(conn)
    _refuse_newer(version, path)
    missing = set(TABLES) - set(sqlite_utils.Database(conn).table_names())
    if version == 0 or missing:
        raise StorageError(
            f"{path}: not a station-agent buffer (missing tables: "
            f"{', '.join(sorted(missing)) or 'none'}; schema version {version})"
        )
    return version
