"""The monthly partitions of ``readings`` (PostgreSQL): made on demand, each in a short
transaction of its own on a connection of its own, never inside an intake transaction
(warehouse/store/SCHEMA.md says why)."""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from warehouse.store.model import StoreError
from warehouse.store.rows import time_of

DDL_LOCK_TIMEOUT = "30s"  # a partition waits this long for readers of readings, then fails


def month_of(ms: int) -> tuple[int, int]:
    """(year, month) of a time in milliseconds since 1970, UTC."""
    at = time_of(ms)
    return at.year, at.month


def _next_month(month: tuple[int, int]) -> tuple[int, int]:
    return (month[0] + 1, 1) if month[1] == 12 else (month[0], month[1] + 1)


def partition_name(year: int, month: int) -> str:
    return f"readings_y{year:04d}m{month:02d}"


class Partitions:
    """The partitions one store (process) made or found; ``ensure`` makes the missing ones."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._months: set[tuple[int, int]] = set()
        self._months_lock = threading.Lock()
        self._ddl: psycopg.Connection[Any] | None = None

    def known(self, months: set[tuple[int, int]]) -> bool:
        """Whether this store made (or found) the partitions of every month in ``months``."""
        with self._months_lock:
            return months <= self._months

    def ensure(self, months: set[tuple[int, int]]) -> None:
        """Create the monthly partitions of ``months`` that do not exist yet, and of the month
        after each (so the DDL, which waits for readers of ``readings``, rarely falls on the
        first batch of a month), each in its own transaction on a connection of its own (never
        one of the pool's, held by intakes); waits at most ``DDL_LOCK_TIMEOUT`` for its lock."""
        with self._months_lock:
            missing = months - self._months
            if not missing:
                return
            missing |= {_next_month(m) for m in missing} - self._months
            if self._ddl is None or self._ddl.closed or self._ddl.broken:
                try:
                    self._ddl = psycopg.connect(self.url, connect_timeout=10, autocommit=True)
                    self._ddl.execute(f"SET lock_timeout = '{DDL_LOCK_TIMEOUT}'")
                except psycopg.Error as exc:
                    raise StoreError(f"PostgreSQL (partitions): {str(exc).strip()}") from None
            conn = self._ddl
            for year, month in sorted(missing):
                name = partition_name(year, month)
                nxt = _next_month((year, month))
                with conn.transaction():
                    row = conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()
                    if row is not None and row[0] is None:
                        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))
                        conn.execute(
                            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF readings FOR VALUES "
                            f"FROM ('{year:04d}-{month:02d}-01 00:00:00+00') "
                            f"TO ('{nxt[0]:04d}-{nxt[1]:02d}-01 00:00:00+00')"
                        )
                self._months.add((year, month))

    def close(self) -> None:
        if self._ddl is not None:
            self._ddl.close()
