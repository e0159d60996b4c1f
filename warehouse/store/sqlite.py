"""The SQLite store: the embedded warehouse (one file, no server).

Durable when a transaction returns: WAL with ``synchronous = FULL`` (an acknowledged batch
survives a power cut). Writers are serialised by ``BEGIN IMMEDIATE`` (across processes too, with
a busy timeout) and, inside one process, by a lock around the one connection.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from warehouse.store import config_docs, migrations, reads
from warehouse.store.base import StoreBase
from warehouse.store.model import (
    Chain,
    ConfigDocument,
    Held,
    KeyRow,
    LatestRecord,
    NewBatch,
    Refusal,
    Station,
    StationStatus,
    StoreError,
)
from warehouse.store.rows import iso, parse_iso, time_text

BUSY_TIMEOUT_MS = 30_000
KEEP_UNSIGNED_REFUSALS = 1000  # per station: the latest refusals of bodies whose signature failed


class SqliteStore(StoreBase):
    """A warehouse store in one SQLite file."""

    BACKEND = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        try:
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the SQLite store ({exc})") from None
        self._lock = threading.RLock()
        self._ready = False

    # --- schema -------------------------------------------------------------------------
    def version(self) -> int:
        """The schema version applied (0: none)."""
        with self._lock:
            self._db.execute(migrations.TABLE)
            row = self._db.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return row[0] or 0

    def migrate(self) -> list[int]:
        applied = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(migrations.TABLE)
                done = {r[0] for r in self._db.execute("SELECT version FROM schema_migrations")}
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            for m in migrations.migrations(self.BACKEND):
                if m.version in done:
                    continue
                now = iso(datetime.now(UTC))
                script = (
                    f"BEGIN IMMEDIATE;\n{m.sql}\nINSERT INTO schema_migrations "
                    f"VALUES ({m.version}, '{m.name}', '{now}');\nCOMMIT;"
                )
                try:
                    self._db.executescript(script)
                except sqlite3.Error as exc:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    if "already exists" in str(exc) and self.version() >= m.version:
                        continue  # another process applied it meanwhile
                    raise StoreError(f"{self.path}: migration {m.version} failed: {exc}") from None
                applied.append(m.version)
        return applied

    def _where(self) -> str:
        return str(self.path)

    # --- stations -----------------------------------------------------------------------
    def add_stations(self, entries: Iterable[tuple[str, dict[str, Any], str]]) -> int:
        self._check_ready()
        added = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                now = iso(datetime.now(UTC))
                for station, jwk, kid in entries:
                    row = self._db.execute(
                        "SELECT kid FROM stations WHERE id = ?", (station,)
                    ).fetchone()
                    if row is not None:
                        _same_key(station, row[0], kid)
                        continue
                    text = json.dumps(jwk, sort_keys=True)
                    self._db.execute(
                        "INSERT INTO stations (id, jwk, kid, added_at) VALUES (?, ?, ?, ?)",
                        (station, text, kid, now),
                    )
                    self._db.execute(
                        "INSERT INTO station_keys (station, from_seq, kid, jwk, source) "
                        "VALUES (?, 1, ?, ?, 'registered')",
                        (station, kid, text),
                    )
                    self._db.execute("INSERT INTO chain_heads (station) VALUES (?)", (station,))
                    added += 1
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return added

    def stations(self) -> list[Station]:
        self._check_ready()
        with self._lock:
            rows = self._db.execute("SELECT id, kid, added_at FROM stations ORDER BY id").fetchall()
        return [Station(r[0], r[1], parse_iso(r[2])) for r in rows]

    def status(self) -> list[StationStatus]:
        self._check_ready()
        with self._lock:
            self._db.execute("BEGIN")  # a read transaction: both reads see one snapshot
            try:
                return reads.status(self._rows)
            finally:
                self._db.execute("COMMIT")

    def latest_records(self, kind: str) -> dict[str, LatestRecord]:
        self._check_ready()
        with self._lock:
            return reads.latest_records(self._rows, kind)

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return self._db.execute(sql, params).fetchall()

    def jws_list(self, station: str) -> list[bytes]:
        with self._lock:
            return [
                bytes(r[0])
                for r in self._db.execute(
                    "SELECT jws FROM batches WHERE station = ? ORDER BY seq", (station,)
                )
            ]

    def add_config(self, station: str, make: config_docs.Make) -> ConfigDocument:
        self._check_ready()
        with self._lock:
            return config_docs.sqlite_add(self._db, station, make)

    def config_document(self, station: str) -> ConfigDocument | None:
        self._check_ready()
        with self._lock:
            return config_docs.sqlite_latest(self._db, station)

    # --- the intake's transaction -------------------------------------------------------
    @contextmanager
    def transaction(self, station: str) -> Iterator[_SqliteChain | None]:
        self._check_ready()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                known = self._db.execute(
                    "SELECT 1 FROM chain_heads WHERE station = ?", (station,)
                ).fetchone()
                yield _SqliteChain(self._db, station) if known else None
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    @contextmanager
    def transaction_many(
        self, stations: Sequence[str], seqs: Mapping[str, Iterable[int]] | None = None
    ) -> Iterator[dict[str, Chain | None]]:
        # ``seqs`` is only a hint: here every read is a local call, not a round trip
        self._check_ready()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # every writer waits: all heads are guarded
            try:
                chains: dict[str, Chain | None] = {}
                for station in sorted(set(stations)):
                    known = self._db.execute(
                        "SELECT 1 FROM chain_heads WHERE station = ?", (station,)
                    ).fetchone()
                    chains[station] = _SqliteChain(self._db, station) if known else None
                yield chains
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _same_key(station: str, held: str, kid: str) -> None:
    if held != kid:
        raise StoreError(
            f"station {station!r} is registered with key {held}, not {kid}: a station's key "
            "changes only by a signed rotation record"
        )


class _SqliteChain:
    """One station's chain inside an open ``BEGIN IMMEDIATE`` transaction."""

    def __init__(self, db: sqlite3.Connection, station: str) -> None:
        self._db, self.station = db, station

    def keys(self) -> list[KeyRow]:
        rows = self._db.execute(
            "SELECT from_seq, kid, jwk, source, rotation_seq FROM station_keys "
            "WHERE station = ? ORDER BY from_seq",
            (self.station,),
        ).fetchall()
        return [KeyRow(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]

    def near(self, seq: int) -> dict[int, Held]:
        rows = self._db.execute(
            "SELECT seq, digest, prev, kid, kind, jws FROM batches "
            "WHERE station = ? AND seq BETWEEN ? AND ?",
            (self.station, seq - 1, seq + 1),
        ).fetchall()
        return {r[0]: Held(r[0], r[1], r[2], r[3], r[4], bytes(r[5])) for r in rows}

    def kind_at(self, seq: int) -> str | None:
        row = self._db.execute(
            "SELECT kind FROM batches WHERE station = ? AND seq = ?", (self.station, seq)
        ).fetchone()
        return row[0] if row else None

    def refused_at(self, seq: int) -> bool:
        return (
            self._db.execute(
                "SELECT 1 FROM refusals WHERE station = ? AND seq = ? LIMIT 1",
                (self.station, seq),
            ).fetchone()
            is not None
        )

    def latest_descriptor_below(self, seq: int) -> int | None:
        return self._db.execute(
            "SELECT max(seq) FROM batches WHERE station = ? AND kind = 'descriptor' AND seq < ?",
            (self.station, seq),
        ).fetchone()[0]

    def first_after(self, seq: int, kid: str) -> int | None:
        return self._db.execute(
            "SELECT min(seq) FROM batches WHERE station = ? AND seq > ? "
            "AND (kind = 'rotation' OR kid = ?)",
            (self.station, seq, kid),
        ).fetchone()[0]

    def store(self, batch: NewBatch) -> None:
        received = iso(batch.received_at)
        self._db.execute(
            "INSERT INTO batches (station, seq, digest, prev, kid, kind, payload_version, "
            "descriptor, readings, unsynced, sealed_at, received_at, via, jws) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                batch.station,
                batch.seq,
                batch.digest,
                batch.prev,
                batch.kid,
                batch.kind,
                batch.payload_version,
                batch.descriptor,
                len(batch.readings),
                batch.unsynced,
                batch.sealed_at,
                received,
                batch.via,
                batch.jws,
            ),
        )
        if batch.readings:
            self._db.executemany(
                "INSERT INTO readings (station, batch_seq, ord, device, param, unit, time, "
                "value_kind, value_int, value_float, value_text, status, unsynced) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        batch.station,
                        batch.seq,
                        r.ord,
                        r.device,
                        r.param,
                        r.unit,
                        time_text(r.time_ms),
                        r.value_kind,
                        r.value_int,
                        r.value_float,
                        r.value_text,
                        r.status,
                        int(r.unsynced),
                    )
                    for r in batch.readings
                ],
            )
        if batch.record_body is not None:
            self._db.execute(
                "INSERT INTO records (station, seq, kind, body, sealed_at) VALUES (?, ?, ?, ?, ?)",
                (
                    batch.station,
                    batch.seq,
                    batch.kind,
                    json.dumps(batch.record_body),
                    batch.sealed_at,
                ),
            )
        if batch.new_key is not None:
            key = batch.new_key
            self._db.execute(
                "INSERT INTO station_keys (station, from_seq, kid, jwk, source, rotation_seq) "
                "VALUES (?, ?, ?, ?, 'rotation', ?)",
                (
                    batch.station,
                    key.from_seq,
                    key.kid,
                    json.dumps(key.jwk, sort_keys=True),
                    key.rotation_seq,
                ),
            )
        self._advance(batch, received)

    def _advance(self, batch: NewBatch, received: str) -> None:
        contiguous, digest, highest = self._db.execute(
            "SELECT contiguous_seq, contiguous_digest, highest_seq FROM chain_heads "
            "WHERE station = ?",
            (self.station,),
        ).fetchone()
        if batch.seq == contiguous + 1:
            contiguous, digest = batch.seq, batch.digest
            for seq, next_digest in self._db.execute(
                "SELECT seq, digest FROM batches WHERE station = ? AND seq > ? ORDER BY seq",
                (self.station, contiguous),
            ).fetchall():
                if seq != contiguous + 1:
                    break
                contiguous, digest = seq, next_digest
        sets = [
            "contiguous_seq = ?",
            "contiguous_digest = ?",
            "batches = batches + 1",
            "readings = readings + ?",
            "last_received_at = ?",
        ]
        args: list[Any] = [contiguous, digest, len(batch.readings), received]
        if batch.seq > highest:
            sets += ["highest_seq = ?", "last_sealed_at = ?"]
            args += [batch.seq, batch.sealed_at]
        self._db.execute(
            f"UPDATE chain_heads SET {', '.join(sets)} WHERE station = ?", (*args, self.station)
        )

    def refuse(self, refusal: Refusal) -> None:
        self._db.execute(
            "INSERT INTO refusals (station, seq, received_at, via, reason, digest, size, signed) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                refusal.station,
                refusal.seq,
                iso(refusal.received_at),
                refusal.via,
                refusal.reason[:500],
                refusal.digest,
                refusal.size,
                int(refusal.signed),
            ),
        )
        self._db.execute(
            "UPDATE chain_heads SET refused = refused + 1, chain_refused = chain_refused + ? "
            "WHERE station = ?",
            (int(refusal.chain), self.station),
        )
        if not refusal.signed:
            self._db.execute(
                "DELETE FROM refusals WHERE station = ? AND signed = 0 AND id <= (SELECT id FROM "
                "refusals WHERE station = ? AND signed = 0 ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (self.station, self.station, KEEP_UNSIGNED_REFUSALS),
            )
