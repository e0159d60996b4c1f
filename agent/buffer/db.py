"""The buffer file: one SQLite connection, one lock, one way to take a transaction.

Every part of the buffer (``readings``, ``chain``, ``ledger``, ``retention``, ``devices``) is
handed the same ``BufferFile`` and goes through it:

* ``file.write(what, fn, durable=False)`` takes the lock, ``BEGIN IMMEDIATE``, calls ``fn(conn)``,
  ``COMMIT`` (``ROLLBACK`` on any exception) and maps SQLite errors to ``StorageError`` /
  ``DiskFullError`` naming the file and ``what`` was being done. ``durable=True`` makes that one
  commit fsynced (synchronous=FULL) even with ``durability = "process"``.
* ``file.read()`` takes the lock and yields the connection for reads (autocommit: each statement
  sees a committed state).
* ``max_disk_mb`` counts the main file and its WAL: the main file may take the cap minus a WAL
  allowance (an eighth of it, at most 64 MiB; SQLite ``max_page_count``), the WAL is truncated
  back to the allowance after each checkpoint (``journal_size_limit``), and a write that finds
  the WAL larger than its allowance checkpoints first, or is refused as ``DiskFullError`` if
  the WAL cannot be emptied (a reader holding it).
* A part keeping an in-memory cache of rows it inserts registers ``file.on_rollback(undo)`` from
  inside ``fn``; ``undo`` runs if that transaction does not commit.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from agent.buffer import schema
from core.errors import DiskFullError, StorageError

T = TypeVar("T")
MAX_WAL_ALLOWANCE = 64 * 1024 * 1024


def _is_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "full" in str(exc)


STATE_DIR_MODE = 0o750  # outside systemd (which makes it 0700): readings, not secrets; the
BUFFER_FILE_MODE = 0o640  # key beside them stays 0600. SQLite gives -wal/-shm the file's mode.


def no_buffer_yet(path: Path) -> str:
    """What a command other than ``run`` says when the configured buffer does not exist."""
    return (
        f"{path}: no buffer yet: `station-agent run` creates it at its first start (or "
        "buffer.path in the configuration is not this station's buffer)"
    )


def _create_private(path: Path) -> None:
    """Make the state directory (at most 0750) and an empty buffer file (at most 0640) if they
    are missing, so SQLite does not create them with the process's umask (often 0755/0644)."""
    path.parent.mkdir(mode=STATE_DIR_MODE, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, BUFFER_FILE_MODE))
    except FileExistsError:
        pass


class BufferFile:
    """The SQLite file under the buffer. Thread-safe: one connection, one re-entrant lock."""

    def __init__(
        self,
        path: Path,
        *,
        durability: str = "power",
        max_disk_mb: float | None = None,
        read_only: bool = False,
        create: bool = True,
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        if (read_only or not create) and not self.path.exists():
            raise StorageError(no_buffer_yet(self.path))
        self._lock = threading.RLock()
        self._durable_commits = durability == "power"
        self._undo: list[Callable[[], None]] = []
        self._wal_allowance: int | None = None
        try:
            if read_only:
                self._conn = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=10
                )
                self.schema_version = schema.check_readable(self._conn, self.path)
                return
            _create_private(self.path)
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA cache_size=-1024")  # 1 MiB: RSS must not grow with a backlog
            self._sync("FULL" if self._durable_commits else "NORMAL")
            schema.migrate(self._conn, self.path)
            self.schema_version = schema.SCHEMA_VERSION
            quick = self._conn.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StorageError(
                f"{self.path}: cannot open the buffer: {exc}. If the file is damaged, see "
                "docs/durability.md ('A damaged buffer.db'; station-agent docs durability): "
                "move it aside, never delete it."
            ) from None
        if quick != "ok":
            raise StorageError(
                f"{self.path}: the buffer is damaged (quick_check: {quick}). Move it aside "
                "(see docs/durability.md, 'A damaged buffer.db'; station-agent docs durability); "
                "never delete it."
            )
        if max_disk_mb is not None:
            cap = int(max_disk_mb * 1024 * 1024)
            self._wal_allowance = min(MAX_WAL_ALLOWANCE, cap // 8)
            page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
            pages = max((cap - self._wal_allowance) // page_size, 16)
            self._conn.execute(f"PRAGMA max_page_count={pages}")
            self._conn.execute(f"PRAGMA journal_size_limit={self._wal_allowance}")

    def wal_bytes(self) -> int:
        """The size of the write-ahead log beside the file (0 when there is none)."""
        try:
            return os.stat(f"{self.path}-wal").st_size
        except FileNotFoundError:
            return 0

    def _check_wal(self) -> None:
        """Under the lock, before a write: keep the WAL within its share of ``max_disk_mb``."""
        if self._wal_allowance is None or self.wal_bytes() <= self._wal_allowance:
            return
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if self.wal_bytes() > self._wal_allowance:
            raise sqlite3.OperationalError(
                f"database or disk is full: the WAL holds {self.wal_bytes()} bytes, more than "
                f"its {self._wal_allowance} bytes of max_disk_mb, and cannot be checkpointed "
                "(another process holds a read open on the buffer?)"
            )

    def _sync(self, mode: str) -> None:
        self._conn.execute(f"PRAGMA synchronous={mode}")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, for reads."""
        with self._lock:
            yield self._conn

    def on_rollback(self, undo: Callable[[], None]) -> None:
        """Inside ``write``: run ``undo`` if the current transaction does not commit."""
        self._undo.append(undo)

    @contextmanager
    def _transaction(self, durable: bool) -> Iterator[sqlite3.Connection]:
        with self._lock:
            relax = durable and not self._durable_commits
            if relax:
                self._sync("FULL")
            conn, committed = self._conn, False
            try:
                self._check_wal()
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
                committed = True
            finally:
                try:
                    if not committed and conn.in_transaction:  # SQLite may have rolled back
                        conn.execute("ROLLBACK")  # already (disk full)
                finally:
                    undo, self._undo = self._undo, []
                    if not committed:
                        for fn in reversed(undo):
                            fn()
                    if relax:
                        self._sync("NORMAL")

    def write(self, what: str, fn: Callable[[sqlite3.Connection], T], durable: bool = False) -> T:
        """Run ``fn(conn)`` in one transaction (see the module docstring); returns its result."""
        if self.read_only:
            raise StorageError(f"{self.path}: opened read-only; cannot do {what}")
        try:
            with self._transaction(durable) as conn:
                return fn(conn)
        except sqlite3.Error as exc:
            if _is_full(exc):
                raise DiskFullError(
                    f"{self.path}: buffer full while {what} (disk or max_disk_mb); "
                    f"data already stored is kept ({exc})"
                ) from None
            raise StorageError(f"{self.path}: {what} failed: {exc}") from None

    def integrity_check(self) -> str:
        with self.read() as conn:
            return conn.execute("PRAGMA integrity_check").fetchone()[0]

    def checkpoint(self) -> None:
        """Copy the WAL into the main file and empty it (the file alone is then the buffer)."""
        with self.read() as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
