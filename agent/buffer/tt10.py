"""The TT10 delivery ledger, in the buffer's own SQLite file (``buffer.db``), tables
``tt10_files`` and ``tt10_cursor`` (made by the buffer's migration 6, ``agent.buffer.schema``).

One row per period that has a file: its name, size, when the server confirmed it (``NULL``:
not yet) and the last error. A cursor per transport says up to when stored readings were turned
into rows. Durable: every write commits with ``synchronous=FULL`` before returning; a file
delivered but not yet recorded when the agent dies is found on the server at the next attempt
(same name, same size) and recorded without a second upload.

The TT10 transport's thread keeps a connection of its own (``Tt10Ledger``: its own
``BufferFile``, so its writes never wait behind the agent's lock); ``status`` reads the same
tables through the read-only ``Buffer`` (``summary``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from agent.buffer.db import BufferFile
from agent.buffer.readings import ReadingsStore
from core.errors import StorageError
from core.reading import Reading


@dataclass(frozen=True, slots=True)
class LedgerSummary:
    last_delivered_path: str | None
    last_delivered_ms: int | None
    backlog: int
    oldest_unsent_ms: int | None
    oldest_unsent_path: str | None
    last_error: str | None
    last_error_ms: int | None


class Tt10Ledger:
    """Which period's file went where. Thread-safe (one connection, one lock)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.file = BufferFile(self.path, durability="power")  # migrated: the tables exist
        self._store = ReadingsStore(self.file)

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self.file.read() as conn:
            return conn.execute(sql, args).fetchall()

    def _write(self, what: str, statements: list[tuple[str, tuple]]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            for sql, args in statements:
                conn.execute(sql, args)

        self.file.write(f"TT10 ledger: {what}", run, durable=True)

    def readings(self, start_ms: int, end_ms: int) -> list[Reading]:
        """The buffer's readings with ``start_ms <= time < end_ms``, in stored order."""
        try:
            rows = self._store.readings_between(start_ms, end_ms)
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: reading the buffer failed: {exc}") from None
        return [Reading(r.device, r.param, r.unit, r.time_ms, r.value, r.status) for r in rows]

    def scanned_upto(self, transport: str) -> int | None:
        rows = self._query(
            "SELECT scanned_upto_ms FROM tt10_cursor WHERE transport = ?", (transport,)
        )
        return rows[0][0] if rows else None

    def add_periods(
        self, transport: str, files: list[tuple[int, str, int]], scanned_upto_ms: int
    ) -> None:
        """Record new periods (start, remote path, size) and move the cursor, atomically."""
        statements: list[tuple[str, tuple[object, ...]]] = [
            (
                "INSERT OR IGNORE INTO tt10_files (transport, period_ms, path, size) "
                "VALUES (?, ?, ?, ?)",
                (transport, period, path, size),
            )
            for period, path, size in files
        ]
        statements.append(
            (
                "INSERT INTO tt10_cursor (transport, scanned_upto_ms) VALUES (?, ?) "
                "ON CONFLICT (transport) DO UPDATE SET scanned_upto_ms = excluded.scanned_upto_ms",
                (transport, scanned_upto_ms),
            )
        )
        self._write("recording new periods", statements)

    def pending(self, transport: str, limit: int = 1000) -> list[int]:
        """Period starts not yet delivered, oldest first."""
        rows = self._query(
            "SELECT period_ms FROM tt10_files WHERE transport = ? AND delivered_ms IS NULL "
            "ORDER BY period_ms LIMIT ?",
            (transport, limit),
        )
        return [r[0] for r in rows]

    def mark_delivered(
        self, transport: str, period_ms: int, path: str, size: int, at_ms: int
    ) -> None:
        self._write(
            "recording a delivery",
            [
                (
                    "UPDATE tt10_files SET delivered_ms = ?, path = ?, size = ?, "
                    "attempts = attempts + 1, last_try_ms = ? WHERE transport = ? AND "
                    "period_ms = ?",
                    (at_ms, path, size, at_ms, transport, period_ms),
                )
            ],
        )

    def mark_failed(self, transport: str, period_ms: int, error: str, at_ms: int) -> None:
        self._write(
            "recording a failed delivery",
            [
                (
                    "UPDATE tt10_files SET attempts = attempts + 1, last_error = ?, "
                    "last_try_ms = ? WHERE transport = ? AND period_ms = ?",
                    (error, at_ms, transport, period_ms),
                )
            ],
        )

    def oldest_needed_ms(self, transport: str) -> int | None:
        """The earliest reading time this transport may still need (its hold-back on pruning):
        the oldest undelivered period, or the scan cursor; ``None`` before the first scan."""
        rows = self._query(
            "SELECT min(period_ms) FROM tt10_files WHERE transport = ? AND delivered_ms IS NULL",
            (transport,),
        )
        cursor = self.scanned_upto(transport)
        candidates = [x for x in (rows[0][0], cursor) if x is not None]
        return min(candidates) if cursor is not None else None

    def forget_delivered_before(self, transport: str, older_than_ms: int) -> None:
        """Drop rows of delivered periods older than the buffer's retention."""
        self._write(
            "pruning delivered periods",
            [
                (
                    "DELETE FROM tt10_files WHERE transport = ? AND delivered_ms IS NOT NULL "
                    "AND period_ms < ? AND delivered_ms < ?",
                    (transport, older_than_ms, older_than_ms),
                )
            ],
        )

    def close(self) -> None:
        self.file.close()


def summary(file: BufferFile, transport: str) -> LedgerSummary:
    """The status figures of one TT10 transport, read from ``file`` (read-only is enough)."""
    try:
        with file.read() as db:
            last = db.execute(
                "SELECT path, delivered_ms FROM tt10_files WHERE transport = ? AND delivered_ms "
                "IS NOT NULL ORDER BY period_ms DESC LIMIT 1",
                (transport,),
            ).fetchone()
            backlog = db.execute(
                "SELECT count(*) FROM tt10_files WHERE transport = ? AND delivered_ms IS NULL",
                (transport,),
            ).fetchone()[0]
            oldest = db.execute(
                "SELECT period_ms, path FROM tt10_files WHERE transport = ? AND delivered_ms IS "
                "NULL ORDER BY period_ms LIMIT 1",
                (transport,),
            ).fetchone()
            error = db.execute(
                "SELECT last_error, last_try_ms FROM tt10_files WHERE transport = ? AND "
                "delivered_ms IS NULL AND last_error IS NOT NULL ORDER BY last_try_ms DESC LIMIT 1",
                (transport,),
            ).fetchone()
    except sqlite3.OperationalError:  # a buffer older than migration 6, read as it is
        return LedgerSummary(None, None, 0, None, None, None, None)
    return LedgerSummary(
        last[0] if last else None,
        last[1] if last else None,
        backlog,
        oldest[0] if oldest else None,
        oldest[1] if oldest else None,
        error[0] if error else None,
        error[1] if error else None,
    )
