"""The ledger of files and rows a ``files`` device has taken (its own SQLite file).

How it keeps every row exactly once — idempotent with the buffer, not in its transaction:

1. A file version (name, size, SHA-256) is read; its readings whose (param, time) the ledger
   already holds are dropped (a file re-sent, rewritten, or the same rows in a new file).
2. The rest are handed to ``deliver``, which returns once the buffer committed them.
3. Only then one ledger transaction records the file version and the new rows' keys.

A kill between 2 and 3 leaves the rows in the buffer but not in the ledger: after the restart
the file is read again and the same readings are delivered again; the buffer stores a reading
once per (channel, time) (its unique index), so nothing is doubled. A kill before 2 loses
nothing: the file is still there and not in the ledger. The ledger's commit is durable when
``record`` returns (WAL, synchronous FULL). Rows older than ``keep_days`` are forgotten and
refused (the buffer may have pruned them, so its unique index would no longer guard them).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS files_taken (device TEXT NOT NULL, name TEXT NOT NULL, "
    "size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL, "
    "rows INTEGER NOT NULL, new_rows INTEGER NOT NULL, taken_ms INTEGER NOT NULL, "
    "PRIMARY KEY (device, name, sha256))",
    "CREATE TABLE IF NOT EXISTS rows_taken (device TEXT NOT NULL, param TEXT NOT NULL, "
    "time_ms INTEGER NOT NULL, PRIMARY KEY (device, param, time_ms)) WITHOUT ROWID",
)
RowKey = tuple[str, int]  # (param, time_ms)


class FileLedger:
    """Files and rows taken, per device; safe to share between devices and threads."""

    def __init__(self, path: Path, device: str, keep_days: int = 90) -> None:
        self.path, self.device, self.keep_days = path, device, keep_days
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            path, timeout=30, check_same_thread=False, isolation_level=None
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        for statement in _SCHEMA:
            self._conn.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def cutoff_ms(self, now_ms: int | None = None) -> int:
        """Rows before this time are neither remembered nor taken."""
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        return now_ms - self.keep_days * 86_400_000

    def has_stat(self, name: str, size: int, mtime_ns: int) -> bool:
        """True if a version of ``name`` with this size and mtime was taken (no need to read)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM files_taken WHERE device = ? AND name = ? AND size = ? "
                "AND mtime_ns = ? LIMIT 1",
                (self.device, name, size, mtime_ns),
            ).fetchone()
        return row is not None

    def latest_stats(self) -> dict[str, tuple[int, int]]:
        """name -> (size, mtime_ns) of the version of each name taken last."""
        with self._lock:
            cur = self._conn.execute(
                "SELECT name, size, mtime_ns FROM files_taken WHERE device = ? "
                "ORDER BY taken_ms, rowid",
                (self.device,),
            )
            return {name: (size, mtime) for name, size, mtime in cur}

    def has_file(self, name: str, sha256: str) -> bool:
        """True if this exact file (name and content) was taken."""
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM files_taken WHERE device = ? AND name = ? AND sha256 = ?",
                (self.device, name, sha256),
            ).fetchone()
        return row is not None

    def new_keys(self, keys: Iterable[RowKey]) -> set[RowKey]:
        """The keys not taken yet."""
        wanted = set(keys)
        if not wanted:
            return wanted
        with self._lock:
            cur = self._conn.execute(
                "SELECT param, time_ms FROM rows_taken WHERE device = ? AND time_ms BETWEEN ? "
                "AND ?",
                (self.device, min(t for _, t in wanted), max(t for _, t in wanted)),
            )
            taken = {(p, t) for p, t in cur}
        return wanted - taken

    def record(
        self, name: str, size: int, mtime_ns: int, sha256: str, rows: int, keys: Iterable[RowKey]
    ) -> None:
        """Record a file version and its newly delivered rows, in one durable transaction."""
        keys = list(keys)
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR IGNORE INTO rows_taken (device, param, time_ms) VALUES (?, ?, ?)",
                    [(self.device, p, t) for p, t in keys],
                )
                self._conn.execute(
                    "INSERT OR REPLACE INTO files_taken (device, name, size, mtime_ns, sha256, "
                    "rows, new_rows, taken_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        self.device,
                        name,
                        size,
                        mtime_ns,
                        sha256,
                        rows,
                        len(keys),
                        int(time.time() * 1000),
                    ),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def touch(self, name: str, size: int, mtime_ns: int, sha256: str) -> None:
        """A version taken before came again (re-sent): remember its new size and mtime."""
        with self._lock:
            self._conn.execute(
                "UPDATE files_taken SET size = ?, mtime_ns = ? WHERE device = ? AND name = ? "
                "AND sha256 = ?",
                (size, mtime_ns, self.device, name, sha256),
            )

    def forget_old(self, now_ms: int | None = None) -> int:
        """Drop rows and files older than ``keep_days``; returns the rows dropped."""
        cutoff = self.cutoff_ms(now_ms)
        with self._lock:
            cur = self._conn.execute(
                "DELETE FROM rows_taken WHERE device = ? AND time_ms < ?", (self.device, cutoff)
            )
            self._conn.execute(
                "DELETE FROM files_taken WHERE device = ? AND taken_ms < ?", (self.device, cutoff)
            )
        return cur.rowcount

    def files(self) -> list[tuple[str, int, str, int, int]]:
        """(name, size, sha256, rows, new rows) of every file version taken, in order taken."""
        with self._lock:
            return list(
                self._conn.execute(
                    "SELECT name, size, sha256, rows, new_rows FROM files_taken WHERE device = ? "
                    "ORDER BY taken_ms, rowid",
                    (self.device,),
                )
            )
