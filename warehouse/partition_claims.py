"""Which intake worker serves which partition of the batch stream: claims held as PostgreSQL
session advisory locks.

A worker holds partition *p* while its claims connection holds ``pg_advisory_lock(KEY, p)``.
A worker killed with -9 loses its connection and so its locks at once (the kernel closes the
socket); a PostgreSQL restart drops every lock and every worker claims again. Each worker takes
its fair share, ``ceil(partitions / live workers)``, live workers being the sessions whose
``application_name`` is ``APPLICATION``; one that holds more gives the extra back.

A claim orders the work, it does not make it correct: two workers that both believe they hold a
partition (a stalled one, a split) are still safe, because every batch commits under the lock of
its station's chain head (warehouse/store/SCHEMA.md).
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import psycopg

APPLICATION = "station-warehouse-intake"
KEY = 0x57A7  # the first half of every claim's two-part advisory lock key


class PartitionClaims:
    """A worker's claims on ``partitions`` partitions, through one connection to ``dsn``."""

    def __init__(self, dsn: str, partitions: int, worker: str) -> None:
        self.dsn, self.partitions, self.worker = dsn, partitions, worker
        self.held: set[int] = set()
        self.surplus: set[int] = set()  # held above the fair share: to give back (release)
        self._conn: psycopg.Connection[Any] | None = None
        # Start looking at a place of our own, so that workers spread out at once.
        self._start = zlib.crc32(worker.encode()) % max(1, partitions)

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self.held.clear()
            self._conn = psycopg.connect(
                self.dsn, autocommit=True, application_name=APPLICATION, connect_timeout=3
            )
        return self._conn

    def refresh(self) -> set[int]:
        """Take partitions up to the fair share, note in ``surplus`` those above it; returns
        those held.
        The connection lost (PostgreSQL restarted or unreachable): nothing is held, and an
        ``OperationalError`` is raised for the caller to log and retry."""
        try:
            conn = self._connect()
            workers = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (APPLICATION,),
            ).fetchone()
            share = math.ceil(self.partitions / max(1, workers[0] if workers else 1))
            # Given back by release() once the worker has stopped consuming them (a partition
            # handed over mid-fetch would wait ack_wait for its messages in flight).
            self.surplus = set(sorted(self.held, reverse=True)[: max(0, len(self.held) - share)])
            for i in range(self.partitions):
                if len(self.held) >= share:
                    break
                p = (self._start + i) % self.partitions
                if p in self.held:
                    continue
                got = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (KEY, p)).fetchone()
                if got and got[0]:
                    self.held.add(p)
        except psycopg.Error:
            self.close()
            raise
        return set(self.held)

    def release(self, partition: int) -> None:
        """Give one partition back (its consumer is stopped, its messages answered or nak'd)."""
        if partition not in self.held:
            return
        self.held.discard(partition)
        self.surplus.discard(partition)
        try:
            if self._conn is not None and not self._conn.closed:
                self._conn.execute("SELECT pg_advisory_unlock(%s, %s)", (KEY, partition))
        except psycopg.Error:
            self.close()

    def close(self) -> None:
        """Give every claim back (closing the session releases its locks)."""
        self.held.clear()
        self.surplus.clear()
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None
