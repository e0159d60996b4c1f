"""Migration 6: the TT10 ledger's tables are the buffer's. A buffer written by the agent before
it (schema 5), where the TT10 transport created its tables itself at its first start, keeps
them and their rows; one where it never ran gets them. Status reads an unmigrated file as it is.

The old file is built here with plain sqlite3 and the exact statements the old code ran
(agent/transports/tt10/ledger.py before issue 26 phase 2), not with the code under test.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agent.buffer import Buffer
from agent.buffer.schema import LATEST, TT10_TABLES
from agent.buffer.tt10 import Tt10Ledger, summary

# What the TT10 transport ran on every start before migration 6 (copied from that code).
OLD_TT10_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS tt10_files (transport TEXT NOT NULL, period_ms INTEGER NOT NULL, "
    "path TEXT NOT NULL, size INTEGER NOT NULL, delivered_ms INTEGER, attempts INTEGER NOT NULL "
    "DEFAULT 0, last_error TEXT, last_try_ms INTEGER, PRIMARY KEY (transport, period_ms)) "
    "WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS tt10_cursor (transport TEXT PRIMARY KEY, scanned_upto_ms INTEGER)",
)


def _schema_5_buffer(path: Path, *, tt10_ran: bool) -> None:
    db = sqlite3.connect(path)
    for create in LATEST:
        if create not in TT10_TABLES:
            db.execute(create)
    if tt10_ran:
        for create in OLD_TT10_SCHEMA:
            db.execute(create)
        db.executemany(
            "INSERT INTO tt10_files (transport, period_ms, path, size, delivered_ms, attempts, "
            "last_error, last_try_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                ("receiver", 1000, "/KT01/a.txt", 10, 1500, 1, None, 1500),
                ("receiver", 2000, "/KT01/b.txt", 12, None, 3, "server down", 2600),
            ],
        )
        db.execute("INSERT INTO tt10_cursor VALUES ('receiver', 3000)")
    db.execute("PRAGMA user_version = 5")
    db.commit()
    db.close()


def _raw(path: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_a_schema_5_buffer_keeps_the_tt10_rows_the_old_transport_wrote(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    _schema_5_buffer(path, tt10_ran=True)
    before = _raw(path, "SELECT * FROM tt10_files ORDER BY period_ms")
    Buffer(path).close()
    assert _raw(path, "PRAGMA user_version") == [(6,)]
    assert _raw(path, "SELECT * FROM tt10_files ORDER BY period_ms") == before
    ledger = Tt10Ledger(path)
    try:
        assert ledger.pending("receiver") == [2000]
        assert ledger.scanned_upto("receiver") == 3000
    finally:
        ledger.close()


def test_a_schema_5_buffer_where_tt10_never_ran_gets_its_tables(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    _schema_5_buffer(path, tt10_ran=False)
    reader = Buffer(path, read_only=True)  # status beside an agent not upgraded yet
    try:
        assert summary(reader.file, "receiver").backlog == 0
    finally:
        reader.close()
    ledger = Tt10Ledger(path)  # the transport's own open migrates the file
    try:
        ledger.add_periods("receiver", [(1000, "/KT01/a.txt", 10)], 2000)
        assert ledger.pending("receiver") == [1000]
    finally:
        ledger.close()
    names = {r[0] for r in _raw(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"tt10_files", "tt10_cursor"} <= names
    assert _raw(path, "PRAGMA user_version") == [(6,)]


def test_the_status_summary_reads_the_migrated_rows(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    _schema_5_buffer(path, tt10_ran=True)
    Buffer(path).close()
    reader = Buffer(path, read_only=True)
    try:
        s = summary(reader.file, "receiver")
    finally:
        reader.close()
    assert (s.last_delivered_path, s.backlog, s.oldest_unsent_path, s.last_error) == (
        "/KT01/a.txt",
        1,
        "/KT01/b.txt",
        "server down",
    )
