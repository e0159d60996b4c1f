"""The buffer's schema: its version and the ordered migrations that get any buffer.db to it.

The version is ``PRAGMA user_version`` (schema 1, written before migrations existed, left it 0
and kept ``meta.schema_version = '1'``; a file with that row and ``user_version`` 0 is version
1). A new, empty file gets the latest schema at once (``LATEST``, one transaction). An older
file is brought up by ``migrate``: in order, each migration above the file's version, each in its
own ``BEGIN IMMEDIATE`` transaction that also sets ``user_version``, so a crash during a
migration leaves the file at the previous version and the migration runs again at the next
start. Migrations are also idempotent, so one that must commit part-way (sqlite-utils'
``transform`` commits) is safe to re-run. Migrations use sqlite-utils (``create_index``,
``transform``, ``add_column``); it is imported only when an old file is migrated (it costs the
daemon 2 MiB it need not carry otherwise). A test keeps ``LATEST`` equal to what migrating a
schema-1 file gives.

Versions:

1. tables channels, readings, batches, deliveries, devices, meta.
2. a reading is stored once per (channel, time_ms): copies removed, the oldest kept; unique
   index ``readings_time_channel`` (also the time order ``readings_between`` reads in);
   ``meta.schema_version`` removed (``user_version`` is the version).
3. ``readings.value`` has no declared type: SQLite keeps an integer, a float or a text as given
   (a FLOAT column turned the int32 ``-123456`` into ``-123456.0`` and the label ``"0042"`` into
   ``42.0``). Rows already stored keep the value they were stored with.
4. ``readings.unsynced`` (1: taken while the system clock was not synchronized, 0 otherwise;
   older rows 0) and ``batches.kind`` (``readings`` for a measurement batch, else the record
   kind of a payload v3 record, which seals no readings; older rows ``readings``).
5. table ``maintenance``: maintenance and calibration windows (``agent.buffer.maintenance``;
   ``AUTOINCREMENT``: a window's number is never used twice, also after pruning).
6. tables ``tt10_files`` and ``tt10_cursor``: the TT10 transport's delivery ledger
   (``agent.buffer.tt10``). Agents before this version created them themselves at the
   transport's first start: a file that has them keeps them and their rows.

A buffer written by a newer agent (higher version) is refused with a clear error.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agent.support.logs import event
from core.errors import StorageError

if TYPE_CHECKING:
    import sqlite_utils
    import sqlite_utils.db

log = logging.getLogger("agent.buffer")
TABLES = ("channels", "readings", "batches", "deliveries", "devices", "meta")


def _table(db: sqlite_utils.Database, name: str) -> sqlite_utils.db.Table:
    from sqlite_utils.db import Table

    return Table(db, name)


def _v1_tables(db: sqlite_utils.Database) -> None:
    _table(db, "channels").create(
        {"id": int, "device": str, "param": str, "unit": str}, pk="id", if_not_exists=True
    )
    _table(db, "channels").create_index(
        ["device", "param", "unit"], unique=True, if_not_exists=True
    )
    _table(db, "readings").create(
        {"id": int, "channel": int, "time_ms": int, "value": float, "status": int},
        pk="id",
        if_not_exists=True,
    )
    _table(db, "batches").create(
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
    _table(db, "devices").create(
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
    _table(db, "meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)


def _v2_readings_once(db: sqlite_utils.Database) -> None:
    # A datalogger re-sending a packet after a lost answer gave schema 1 two copies. Keep the
    # oldest (a sealed copy stays inside its signed batch, which is kept as it was).
    copies = db.execute(
        "DELETE FROM readings WHERE id NOT IN "
        "(SELECT min(id) FROM readings GROUP BY channel, time_ms)"
    ).rowcount
    _table(db, "readings").create_index(
        ["time_ms", "channel"], index_name="readings_time_channel", unique=True, if_not_exists=True
    )
    db.execute("DELETE FROM meta WHERE key = 'schema_version'")
    if copies:
        event(log, logging.WARNING, "buffer_duplicate_readings_removed", copies=copies)


_READINGS_V3 = (
    "CREATE TABLE [readings] (\n   [id] INTEGER PRIMARY KEY,\n   [channel] INTEGER,\n"
    "   [time_ms] INTEGER,\n   [value],\n   [status] INTEGER\n)"
)
_READINGS_INDEX = (
    "CREATE UNIQUE INDEX [readings_time_channel]\n    ON [readings] ([time_ms], [channel])"
)


def _v3_values_keep_their_kind(db: sqlite_utils.Database) -> None:
    # sqlite-utils' transform cannot declare "no type" and commits part-way: plain SQL, one
    # transaction (a copy, then the swap).
    sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'readings'").fetchone()[0]
    if "[value] FLOAT" not in sql:
        return
    db.execute(_READINGS_V3.replace("[readings]", "[readings_v3]", 1))
    db.execute("INSERT INTO readings_v3 SELECT id, channel, time_ms, value, status FROM readings")
    db.execute("DROP TABLE readings")
    db.execute(_READINGS_V3)
    db.execute("INSERT INTO readings SELECT * FROM readings_v3")
    db.execute("DROP TABLE readings_v3")
    db.execute(_READINGS_INDEX)


_UNSYNCED = "unsynced INTEGER NOT NULL DEFAULT 0"
_KIND = "kind TEXT NOT NULL DEFAULT 'readings'"


def _v4_clock_flag_and_record_kinds(db: sqlite_utils.Database) -> None:
    for table, column in (("readings", _UNSYNCED), ("batches", _KIND)):
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})").fetchall()}
        if column.split()[0] not in have:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")


def _added(create: str, column: str) -> str:
    """What SQLite stores for ``create`` after ``ALTER TABLE ... ADD COLUMN column``."""
    return f"{create[:-1]}, {column})"


MAINTENANCE_TABLE = (
    "CREATE TABLE maintenance (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, "
    "device TEXT NOT NULL, channels TEXT, technician TEXT, reason TEXT, "
    "start_ms INTEGER NOT NULL, until_ms INTEGER, stopped_ms INTEGER, stopped_by TEXT, "
    "start_seq INTEGER, end_seq INTEGER)"
)


def _v5_maintenance(db: sqlite_utils.Database) -> None:
    exists = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'maintenance'").fetchone()
    if not exists:
        db.execute(MAINTENANCE_TABLE)


TT10_TABLES = (
    "CREATE TABLE tt10_files (transport TEXT NOT NULL, period_ms INTEGER NOT NULL, "
    "path TEXT NOT NULL, size INTEGER NOT NULL, delivered_ms INTEGER, attempts INTEGER NOT NULL "
    "DEFAULT 0, last_error TEXT, last_try_ms INTEGER, PRIMARY KEY (transport, period_ms)) "
    "WITHOUT ROWID",
    "CREATE TABLE tt10_cursor (transport TEXT PRIMARY KEY, scanned_upto_ms INTEGER)",
)


def _v6_tt10_ledger(db: sqlite_utils.Database) -> None:
    # The same statements the TT10 transport ran before it had a migration (IF NOT EXISTS:
    # a buffer where it did keeps its tables and rows; sqlite_master stores them alike).
    for create in TT10_TABLES:
        db.execute(create.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1))


# The schema every migration leads to, as SQLite stores it (sqlite_master.sql): a new file gets
# it in one go, without importing sqlite-utils.
LATEST = (
    "CREATE TABLE [channels] (\n   [id] INTEGER PRIMARY KEY,\n   [device] TEXT,\n"
    "   [param] TEXT,\n   [unit] TEXT\n)",
    "CREATE UNIQUE INDEX [idx_channels_device_param_unit]\n"
    "    ON [channels] ([device], [param], [unit])",
    _added(_READINGS_V3, _UNSYNCED),
    _READINGS_INDEX,
    _added(
        "CREATE TABLE [batches] (\n   [seq] INTEGER PRIMARY KEY,\n   [first_id] INTEGER,\n"
        "   [last_id] INTEGER,\n   [count] INTEGER,\n   [sealed_at_ms] INTEGER,\n"
        "   [header] TEXT,\n   [payload] BLOB,\n   [signature] TEXT,\n   [digest] TEXT\n)",
        _KIND,
    ),
    "CREATE TABLE deliveries (transport TEXT, seq INTEGER, state INTEGER, at_ms INTEGER, "
    "detail TEXT, PRIMARY KEY (transport, seq)) WITHOUT ROWID",
    "CREATE TABLE [devices] (\n   [name] TEXT PRIMARY KEY,\n   [last_good_ms] INTEGER,\n"
    "   [last_error] TEXT,\n   [last_error_ms] INTEGER,\n   [polls] INTEGER,\n"
    "   [faults] INTEGER\n)",
    "CREATE TABLE [meta] (\n   [key] TEXT PRIMARY KEY,\n   [value] TEXT\n)",
    MAINTENANCE_TABLE,
    *TT10_TABLES,
)

Migration = Callable[["sqlite_utils.Database"], None]
MIGRATIONS: list[Migration] = [
    _v1_tables,
    _v2_readings_once,
    _v3_values_keep_their_kind,
    _v4_clock_flag_and_record_kinds,
    _v5_maintenance,
    _v6_tt10_ledger,
]  # MIGRATIONS[n-1] makes version n
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
    if version == 0 and _is_empty(conn):
        _step(conn, path, SCHEMA_VERSION, lambda: [conn.execute(sql) for sql in LATEST])
        return [SCHEMA_VERSION]
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    applied = []
    for target in range(version + 1, SCHEMA_VERSION + 1):
        _step(conn, path, target, functools.partial(MIGRATIONS[target - 1], db))
        applied.append(target)
    event(log, logging.INFO, "buffer_migrated", path=str(path), versions=applied)
    return applied


def _step(conn: sqlite3.Connection, path: Path, target: int, fn: Callable[[], object]) -> None:
    """Run ``fn`` and set ``user_version = target`` in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        fn()
        if not conn.in_transaction:  # a step committed part-way (see the module docstring)
            conn.execute("BEGIN IMMEDIATE")
        conn.execute(f"PRAGMA user_version = {target}")
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise StorageError(
                f"{path}: bringing the buffer to schema version {target} failed: {exc}; "
                "the file is left as it was before that step (free disk space and restart)"
            ) from None
        raise


def _is_empty(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def check_readable(conn: sqlite3.Connection, path: Path) -> int:
    """For read-only opens: the file's version, after checking it is a buffer we can read.

    Readers use only what every version has (the tables of version 1), so an older file that
    the agent has not migrated yet is read as it is. Plain SQL: a reader (``status``,
    ``maintenance list``) does not import sqlite-utils (with click and pluggy, ~0.2 s)."""
    version = version_of(conn)
    _refuse_newer(version, path)
    tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    missing = set(TABLES) - {name for (name,) in tables}
    if version == 0 or missing:
        raise StorageError(
            f"{path}: not a station-agent buffer (missing tables: "
            f"{', '.join(sorted(missing)) or 'none'}; schema version {version})"
        )
    return version
