"""The PostgreSQL store (psycopg 3): the warehouse for a network of stations.

Durable when a transaction returns: each connection sets ``synchronous_commit = on`` (the
server's default, enforced here), so a committed batch is in the server's fsynced WAL. Each
intake transaction locks its station's ``chain_heads`` row (``SELECT … FOR UPDATE``) before it
reads anything of the chain, so workers on other machines can share one station's batches and
still never both commit a seq nor check a link against a stale neighbour. Readings go in with
COPY. ``readings`` is range-partitioned by month: a month's partition is created on demand,
just before the transaction that stores its first reading, in a short transaction of its own
under an advisory lock: a partition is DDL (ACCESS EXCLUSIVE on ``readings``), which inside an
intake transaction would be held until it commits (SCHEMA.md, "Types").
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from warehouse.store import config_docs, migrations, reads
from warehouse.store.base import StoreBase
from warehouse.store.model import (
    Chain,
    ConfigDocument,
    LatestRecord,
    Station,
    StationStatus,
    StoreError,
)
from warehouse.store.pg_group import Group, GroupChain
from warehouse.store.pg_partitions import Partitions

KEEP_UNSIGNED_REFUSALS = 1000  # per station: the latest refusals of bodies whose signature failed
_MIGRATION_LOCK = 0x5741_5245  # pg_advisory_xact_lock key while migrating ("WARE")


class PostgresStore(StoreBase):
    """A warehouse store in a PostgreSQL database, with a small pool of connections."""

    BACKEND = "postgres"

    def __init__(self, url: str, *, pool_size: int = 4) -> None:
        self.url = url
        self._pool: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(pool_size)
        self.partitions = Partitions(url)
        self._ready = False
        with self._connection():  # fail now, with a clear error, if it cannot connect
            pass

    # --- connections --------------------------------------------------------------------
    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        self._slots.acquire()
        try:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                try:
                    conn = psycopg.connect(self.url, connect_timeout=10)
                    # an answer means committed to disk, whatever the server's default says
                    conn.execute("SET synchronous_commit = on")
                    conn.commit()
                except psycopg.Error as exc:
                    raise StoreError(
                        f"cannot connect to PostgreSQL at {_safe(self.url)}: {str(exc).strip()}"
                    ) from None
            try:
                yield conn
            except BaseException:
                if conn.closed or conn.broken:
                    conn.close()
                    conn = None  # type: ignore[assignment]
                    self._drop_idle()  # the server went away: the idle ones are broken too
                raise
            finally:
                if conn is not None and not conn.closed:
                    self._pool.put(conn)
        finally:
            self._slots.release()

    def _drop_idle(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return

    # --- schema -------------------------------------------------------------------------
    def version(self) -> int:
        with self._connection() as conn, conn.transaction():
            conn.execute(migrations.TABLE)
            row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return (row[0] if row else None) or 0

    def migrate(self) -> list[int]:
        applied = []
        with self._connection() as conn:
            for m in migrations.migrations(self.BACKEND):
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                    conn.execute(migrations.TABLE)
                    done = conn.execute(
                        "SELECT 1 FROM schema_migrations WHERE version = %s", (m.version,)
                    ).fetchone()
                    if done:
                        continue
                    try:
                        conn.execute(m.sql.encode())
                    except psycopg.Error as exc:
                        raise StoreError(f"migration {m.version} failed: {exc}") from None
                    conn.execute(
                        "INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                        (m.version, m.name, datetime.now(UTC).isoformat()),
                    )
                applied.append(m.version)
        return applied

    def _where(self) -> str:
        return _safe(self.url)

    # --- stations -----------------------------------------------------------------------
    def add_stations(self, entries: Iterable[tuple[str, dict[str, Any], str]]) -> int:
        self._check_ready()
        added = 0
        with self._connection() as conn, conn.transaction():
            conn.execute("LOCK TABLE stations IN SHARE ROW EXCLUSIVE MODE")
            for station, jwk, kid in entries:
                row = conn.execute("SELECT kid FROM stations WHERE id = %s", (station,)).fetchone()
                if row is not None:
                    if row[0] != kid:
                        raise StoreError(
                            f"station {station!r} is registered with key {row[0]}, not {kid}: "
                            "a station's key changes only by a signed rotation record"
                        )
                    continue
                conn.execute(
                    "INSERT INTO stations (id, jwk, kid) VALUES (%s, %s, %s)",
                    (station, Jsonb(jwk), kid),
                )
                conn.execute(
                    "INSERT INTO station_keys (station, from_seq, kid, jwk, source) "
                    "VALUES (%s, 1, %s, %s, 'registered')",
                    (station, kid, Jsonb(jwk)),
                )
                conn.execute("INSERT INTO chain_heads (station) VALUES (%s)", (station,))
                added += 1
        return added

    def stations(self) -> list[Station]:
        self._check_ready()
        with self._connection() as conn, conn.transaction():
            rows = conn.execute("SELECT id, kid, added_at FROM stations ORDER BY id").fetchall()
        return [Station(r[0], r[1], r[2]) for r in rows]

    def status(self) -> list[StationStatus]:
        self._check_ready()
        with self._connection() as conn, conn.transaction():  # both reads: one snapshot
            return reads.status(_runner(conn))

    def latest_records(self, kind: str) -> dict[str, LatestRecord]:
        self._check_ready()
        with self._connection() as conn, conn.transaction():
            return reads.latest_records(_runner(conn), kind)

    def jws_list(self, station: str) -> list[bytes]:
        with self._connection() as conn, conn.transaction():
            return [
                bytes(r[0])
                for r in conn.execute(
                    "SELECT jws FROM batches WHERE station = %s ORDER BY seq", (station,)
                )
            ]

    def add_config(self, station: str, make: config_docs.Make) -> ConfigDocument:
        self._check_ready()
        with self._connection() as conn:
            return config_docs.pg_add(conn, station, make)

    def config_document(self, station: str) -> ConfigDocument | None:
        self._check_ready()
        with self._connection() as conn:
            return config_docs.pg_latest(conn, station)

    # --- the intake's transaction -------------------------------------------------------
    @contextmanager
    def transaction(self, station: str) -> Iterator[GroupChain | None]:
        with self.transaction_many([station]) as chains:
            yield chains[station]  # type: ignore[misc]

    @contextmanager
    def transaction_many(
        self, stations: Sequence[str], seqs: Mapping[str, Iterable[int]] | None = None
    ) -> Iterator[dict[str, Chain | None]]:
        self._check_ready()
        wanted = sorted(set(stations))
        with self._connection() as conn:
            try:
                with conn.transaction():
                    # heads locked in station order, in one statement: two such transactions
                    # never hold each other's heads crosswise (warehouse.store.pg_group)
                    group = Group(conn, self, wanted, seqs)
                    yield {st: group.chains.get(st) for st in wanted}
                    group.flush()
            except psycopg.OperationalError as exc:
                raise StoreError(f"PostgreSQL: {str(exc).strip()}") from exc

    def ensure_partitions(self, months: set[tuple[int, int]]) -> None:
        """Make the monthly partitions of ``months`` (``Partitions.ensure``; bench/sta.py)."""
        self.partitions.ensure(months)

    def close(self) -> None:
        self.partitions.close()
        self._drop_idle()


def _safe(url: str) -> str:
    """A libpq URL without its password (for messages and logs)."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    return f"{scheme}{sep}{userinfo}{at}{host}"


def _runner(conn: psycopg.Connection[Any]) -> reads.Run:
    """``reads``' SQL (``?`` placeholders) run on ``conn`` (psycopg's ``%s``)."""
    return lambda sql, params: conn.execute(sql.replace("?", "%s"), params).fetchall()
