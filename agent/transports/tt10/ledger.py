"""The TT10 delivery ledger, in the buffer's own SQLite file (``buffer.db``).

One row per period that has a file: its name, size, when the server confirmed it (``NULL``:
not yet) and the last error. A cursor per transport says up to when stored readings were turned
into rows. Durable: every write commits with ``synchronous=FULL`` before returning; a file
delivered but not yet recorded when the agent dies is found on the server at the next attempt
(same name, same size) and recorded without a second upload.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from agent.buffer import Buffer
from core.errors import StorageError
from core.reading import Reading

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS tt10_files (transport TEXT NOT NULL, period_ms INTEGER NOT NULL, "
    "path TEXT NOT NULL, size INTEGER NOT NULL, delivered_ms INTEGER, attempts INTEGER NOT NULL "
    "DEFAULT 0, last_error TEXT, last_try_ms INTEGER, PRIMARY KEY (transport, period_ms)) "
    "WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS tt10_cursor (transport TEXT PRIMARY KEY, scanned_upto_ms INTEGER)",
)


def stored_readings(buffer: Buffer, start_ms: int, end_ms: int) -> list[Reading]:
    """The buffer's readings taken in [start_ms, end_ms), in time order."""
    rows = buffer.store.readings_between(start_ms, end_ms)
    return [Reading(r.device, r.param, r.unit, r.time_ms, r.value, r.status) for r in rows]


@dataclass(frozen=True, slots=True)
class LedgerSummary:
    last_delivered_path: str | None
    last_delivered_ms: int | None
    backlog: int
    oldest_unsent_ms: int | None
    oldest_unsent_path: str | None
    last_error: str | None
    last_error_ms: int | None


class Ledger:
    """Which period's file went where. Thread-safe (one connection, one lock)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._buffer: Buffer | None = None
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            for statement in _SCHEMA:
                self._db.execute(statement)
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: cannot open the TT10 ledger: {exc}") from None

    def _write(self, what: str, statements: list[tuple[str, tuple]]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for sql, args in statements:
                    self._db.execute(sql, args)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StorageError(f"{self.path}: TT10 ledger: {what} failed: {exc}") from None

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def readings(self, start_ms: int, end_ms: int) -> list[Reading]:
        """The buffer's readings with ``start_ms <= time < end_ms``, in stored order."""
        with self._lock:
            try:
                if self._buffer is None:  # the buffer's own read API, on a read-only connection
                    self._buffer = Buffer(self.path, read_only=True)
                rows = self._buffer.store.readings_between(start_ms, end_ms)
                return [
                    Reading(r.device, r.param, r.unit, r.time_ms, r.value, r.status) for r in rows
                ]
            except sqlite3.Error as exc:
                raise StorageError(f"{self.path}: reading the buffer failed: {exc}") from None

    def scanned_upto(self, transport: str) -> int | None:
        rows = self.query(
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
        rows = self.query(
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
        rows = self.query(
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
        with self._lock:
            self._db.close()
            if self._buffer is not None:
                self._buffer.close()


def summary(db: sqlite3.Connection, transport: str) -> LedgerSummary:
    """The status figures of one TT10 transport from a (read-only) connection to buffer.db."""
    try:
        last = db.execute(
            "SELECT path, delivered_ms FROM tt10_files WHERE transport = ? AND delivered_ms IS "
            "NOT NULL ORDER BY period_ms DESC LIMIT 1",
            (transport,),
        ).fetchone()
        backlog = db.execute(
            "SELECT count(*) FROM tt10_files WHERE transport = ? AND delivered_ms IS NULL",
            (transport,),
        ).fetchone()[0]
        oldest = db.execute(
            "SELECT period_ms, path FROM tt10_files WHERE transport = ? AND delivered_ms IS NULL "
            "ORDER BY period_ms LIMIT 1",
            (transport,),
        ).fetchone()
        error = db.execute(
            "SELECT last_error, last_try_ms FROM tt10_files WHERE transport = ? AND delivered_ms "
            "IS NULL AND last_error IS NOT NULL ORDER BY last_try_ms DESC LIMIT 1",
            (transport,),
        ).fetchone()
    except sqlite3.OperationalError:  # the transport has not run yet: no ledger tables
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
