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
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from warehouse.store import migrations
from warehouse.store.model import (
    Chain,
    Held,
    KeyRow,
    NeedPartitions,
    NewBatch,
    Refusal,
    Station,
    StationStatus,
    StoreError,
    gaps_of,
)
from warehouse.store.pg_partitions import Partitions, month_of
from warehouse.store.rows import parse_iso, time_of

BACKEND = "postgres"
KEEP_UNSIGNED_REFUSALS = 1000  # per station: the latest refusals of bodies whose signature failed
_MIGRATION_LOCK = 0x5741_5245  # pg_advisory_xact_lock key while migrating ("WARE")
_COPY = (
    "COPY readings (station, batch_seq, ord, device, param, unit, time, value_kind, value_int, "
    "value_float, value_text, status, unsynced) FROM STDIN (FORMAT BINARY)"
)
_COPY_TYPES = [
    "text",
    "int8",
    "int4",
    "text",
    "text",
    "text",
    "timestamptz",
    "text",
    "int8",
    "float8",
    "text",
    "text",
    "bool",
]


class PostgresStore:
    """A warehouse store in a PostgreSQL database, with a small pool of connections."""

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
            for m in migrations.migrations(BACKEND):
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

    def _check_ready(self) -> None:
        if not self._ready:
            have, want = self.version(), migrations.latest(BACKEND)
            if have < want:
                raise StoreError(
                    f"{_safe(self.url)}: schema version {have}, expected {want}: run "
                    "`station-warehouse migrate --config FILE`"
                )
            self._ready = True

    # --- stations -----------------------------------------------------------------------
    def add_station(self, station: str, jwk: dict[str, Any], kid: str) -> bool:
        return self.add_stations([(station, jwk, kid)]) == 1

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
        out = []
        with self._connection() as conn, conn.transaction():
            heads = conn.execute(
                "SELECT h.station, (SELECT kid FROM station_keys k WHERE k.station = h.station "
                "ORDER BY from_seq DESC LIMIT 1), batches, readings, highest_seq, contiguous_seq, "
                "last_sealed_at, last_received_at, refused, chain_refused "
                "FROM chain_heads h ORDER BY station"
            ).fetchall()
            above: dict[str, list[int]] = {}  # seqs held above each contiguous head: one query
            for station, seq in conn.execute(
                "SELECT b.station, b.seq FROM batches b JOIN chain_heads h "
                "ON h.station = b.station WHERE b.seq > h.contiguous_seq ORDER BY 1, 2"
            ):
                above.setdefault(station, []).append(seq)
            for row in heads:
                seqs = above.get(row[0], [])
                out.append(
                    StationStatus(
                        row[0],
                        row[1],
                        row[2],
                        row[3],
                        row[4],
                        row[5],
                        gaps_of(seqs, row[5]),
                        row[6],
                        row[7],
                        row[8],
                        row[9],
                    )
                )
        return out

    def jws_list(self, station: str) -> list[bytes]:
        with self._connection() as conn, conn.transaction():
            return [
                bytes(r[0])
                for r in conn.execute(
                    "SELECT jws FROM batches WHERE station = %s ORDER BY seq", (station,)
                )
            ]

    # --- the intake's transaction -------------------------------------------------------
    @contextmanager
    def transaction(self, station: str) -> Iterator[_PostgresChain | None]:
        self._check_ready()
        with self._connection() as conn:
            chain = None
            try:
                with conn.transaction():
                    known = conn.execute(
                        "SELECT 1 FROM chain_heads WHERE station = %s FOR UPDATE", (station,)
                    ).fetchone()
                    chain = _PostgresChain(conn, station, self, _Written()) if known else None
                    yield chain
            except psycopg.OperationalError as exc:
                raise StoreError(f"PostgreSQL: {str(exc).strip()}") from exc

    @contextmanager
    def transaction_many(self, stations: Sequence[str]) -> Iterator[dict[str, Chain | None]]:
        self._check_ready()
        wanted = sorted(set(stations))
        with self._connection() as conn:
            try:
                with conn.transaction():
                    # one statement, rows locked in station order: two such transactions
                    # never hold each other's heads crosswise
                    locked = {
                        r[0]
                        for r in conn.execute(
                            "SELECT station FROM chain_heads WHERE station = ANY(%s) "
                            "ORDER BY station FOR UPDATE",
                            (wanted,),
                        )
                    }
                    written = _Written()
                    yield {
                        st: _PostgresChain(conn, st, self, written) if st in locked else None
                        for st in wanted
                    }
            except psycopg.OperationalError as exc:
                raise StoreError(f"PostgreSQL: {str(exc).strip()}") from exc

    def ensure_partitions(self, months: set[tuple[int, int]]) -> None:
        """Make the monthly partitions of ``months`` (``Partitions.ensure``; bench/sta.py)."""
        self.partitions.ensure(months)

    def close(self) -> None:
        self.partitions.close()
        self._drop_idle()


class _Written:
    """What one transaction wrote so far (shared by the chains of a group transaction)."""

    readings = False  # it holds a lock on readings: no partition may be made until it ends


class _PostgresChain:
    """One station's chain inside an open transaction holding its chain head FOR UPDATE."""

    def __init__(
        self, conn: psycopg.Connection[Any], station: str, store: PostgresStore, written: _Written
    ) -> None:
        self._conn, self.station, self._store, self._written = conn, station, store, written

    def keys(self) -> list[KeyRow]:
        rows = self._conn.execute(
            "SELECT from_seq, kid, jwk, source, rotation_seq FROM station_keys "
            "WHERE station = %s ORDER BY from_seq",
            (self.station,),
        ).fetchall()
        return [KeyRow(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def near(self, seq: int) -> dict[int, Held]:
        rows = self._conn.execute(
            "SELECT seq, digest, prev, kid, kind, jws FROM batches "
            "WHERE station = %s AND seq BETWEEN %s AND %s",
            (self.station, seq - 1, seq + 1),
        ).fetchall()
        return {r[0]: Held(r[0], r[1], r[2], r[3], r[4], bytes(r[5])) for r in rows}

    def kind_at(self, seq: int) -> str | None:
        row = self._conn.execute(
            "SELECT kind FROM batches WHERE station = %s AND seq = %s", (self.station, seq)
        ).fetchone()
        return row[0] if row else None

    def refused_at(self, seq: int) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM refusals WHERE station = %s AND seq = %s LIMIT 1", (self.station, seq)
        ).fetchone()
        return row is not None

    def latest_descriptor_below(self, seq: int) -> int | None:
        row = self._conn.execute(
            "SELECT max(seq) FROM batches WHERE station = %s AND kind = 'descriptor' AND seq < %s",
            (self.station, seq),
        ).fetchone()
        return row[0] if row else None

    def first_after(self, seq: int, kid: str) -> int | None:
        row = self._conn.execute(
            "SELECT min(seq) FROM batches WHERE station = %s AND seq > %s "
            "AND (kind = 'rotation' OR kid = %s)",
            (self.station, seq, kid),
        ).fetchone()
        return row[0] if row else None

    def store(self, batch: NewBatch) -> None:
        conn, station = self._conn, self.station
        if batch.readings:
            # Partitions first, in their own transactions (see the module's docstring); the
            # station's head stays locked meanwhile, which only delays its own next batch. A
            # group transaction that already wrote readings would wait on itself: it gives up.
            months = {month_of(r.time_ms) for r in batch.readings}
            partitions = self._store.partitions
            if self._written.readings and not partitions.known(months):
                raise NeedPartitions(lambda: partitions.ensure(months))
            partitions.ensure(months)
        conn.execute(
            "INSERT INTO batches (station, seq, digest, prev, kid, kind, payload_version, "
            "descriptor, readings, unsynced, sealed_at, received_at, via, jws) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                station,
                batch.seq,
                batch.digest,
                batch.prev,
                batch.kid,
                batch.kind,
                batch.payload_version,
                batch.descriptor,
                len(batch.readings),
                batch.unsynced,
                parse_iso(batch.sealed_at),
                batch.received_at,
                batch.via,
                batch.jws,
            ),
        )
        if batch.readings:
            self._written.readings = True
            with conn.cursor() as cur, cur.copy(_COPY) as copy:
                copy.set_types(_COPY_TYPES)
                for r in batch.readings:
                    copy.write_row(
                        (
                            station,
                            batch.seq,
                            r.ord,
                            r.device,
                            r.param,
                            r.unit,
                            time_of(r.time_ms),
                            r.value_kind,
                            r.value_int,
                            r.value_float,
                            r.value_text,
                            r.status,
                            r.unsynced,
                        )
                    )
        if batch.record_body is not None:
            conn.execute(
                "INSERT INTO records (station, seq, kind, body, sealed_at) "
                "VALUES (%s, %s, %s, %s, %s)",
                (
                    station,
                    batch.seq,
                    batch.kind,
                    Jsonb(batch.record_body),
                    parse_iso(batch.sealed_at),
                ),
            )
        if batch.new_key is not None:
            key = batch.new_key
            conn.execute(
                "INSERT INTO station_keys (station, from_seq, kid, jwk, source, rotation_seq) "
                "VALUES (%s, %s, %s, %s, 'rotation', %s)",
                (station, key.from_seq, key.kid, Jsonb(key.jwk), key.rotation_seq),
            )
        self._advance(batch)

    def _advance(self, batch: NewBatch) -> None:
        conn = self._conn
        row = conn.execute(
            "SELECT contiguous_seq, contiguous_digest, highest_seq FROM chain_heads "
            "WHERE station = %s",
            (self.station,),
        ).fetchone()
        assert row is not None  # locked FOR UPDATE by this transaction
        contiguous, digest, _highest = row
        if batch.seq == contiguous + 1:
            contiguous, digest = batch.seq, batch.digest
            for seq, next_digest in conn.execute(
                "SELECT seq, digest FROM batches WHERE station = %s AND seq > %s ORDER BY seq",
                (self.station, contiguous),
            ).fetchall():
                if seq != contiguous + 1:
                    break
                contiguous, digest = seq, next_digest
        conn.execute(
            "UPDATE chain_heads SET contiguous_seq = %s, contiguous_digest = %s, "
            "batches = batches + 1, readings = readings + %s, last_received_at = %s, "
            "last_sealed_at = CASE WHEN %s > highest_seq THEN %s ELSE last_sealed_at END, "
            "highest_seq = greatest(highest_seq, %s) WHERE station = %s",
            (
                contiguous,
                digest,
                len(batch.readings),
                batch.received_at,
                batch.seq,
                parse_iso(batch.sealed_at),
                batch.seq,
                self.station,
            ),
        )

    def refuse(self, refusal: Refusal) -> None:
        self._conn.execute(
            "INSERT INTO refusals (station, seq, received_at, via, reason, digest, size, signed) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                refusal.station,
                refusal.seq,
                refusal.received_at,
                refusal.via,
                refusal.reason[:500],
                refusal.digest,
                refusal.size,
                refusal.signed,
            ),
        )
        self._conn.execute(
            "UPDATE chain_heads SET refused = refused + 1, chain_refused = chain_refused + %s "
            "WHERE station = %s",
            (int(refusal.chain), self.station),
        )
        if not refusal.signed:
            self._conn.execute(
                "DELETE FROM refusals WHERE station = %s AND NOT signed AND id <= (SELECT id FROM "
                "refusals WHERE station = %s AND NOT signed ORDER BY id DESC LIMIT 1 OFFSET %s)",
                (self.station, self.station, KEEP_UNSIGNED_REFUSALS),
            )


def _safe(url: str) -> str:
    """A libpq URL without its password (for messages and logs)."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    return f"{scheme}{sep}{userinfo}{at}{host}"
