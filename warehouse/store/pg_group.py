"""One PostgreSQL intake transaction for a group of stations, set-based (issue 29 item 5).

The per-batch chain checks used to cost about six round trips each (keys, neighbours, latest
descriptor, insert, COPY, head); a group of 64 batches paid ~400. Here a group pays a handful:

* ONE pipelined round trip locks every station's chain head (``FOR UPDATE``, station order, so
  two groups never hold each other's heads crosswise) and, behind the lock in the same pipeline,
  reads the keys, the descriptor seqs and the batches at the seqs the intake says it will ask
  about (each claimed seq, its neighbours, the
  descriptor it names) of ALL the group's stations;
* the checks then run in memory, in the order given, each seeing the group's earlier batches
  (kept here as written-but-not-sent); a seq nobody announced is read when asked (correct,
  one round trip);
* at the end, still inside the transaction, ONE pipeline inserts every batch, record, new key
  and moves every chain head, and ONE COPY writes every reading; then the caller commits.

The partitions of the group's months are made just before that COPY: the transaction has not
touched ``readings`` until then, so making one cannot wait on it (SCHEMA.md, "Types").
Refusals are written when they happen (rare; a refusal reads nothing back).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from warehouse.store.model import Held, KeyRow, NewBatch, Refusal
from warehouse.store.pg_partitions import month_of
from warehouse.store.rows import parse_iso, time_of

if TYPE_CHECKING:
    from warehouse.store.postgres import PostgresStore

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
_LOCK = (
    "SELECT station, contiguous_seq, contiguous_digest, highest_seq FROM chain_heads "
    "WHERE station = ANY(%s) ORDER BY station FOR UPDATE"
)
_KEYS = (
    "SELECT station, from_seq, kid, jwk, source, rotation_seq FROM station_keys "
    "WHERE station = ANY(%s) ORDER BY station, from_seq"
)
_DESCRIPTORS = "SELECT station, seq FROM batches WHERE station = ANY(%s) AND kind = 'descriptor'"
_AT = (
    "SELECT b.station, b.seq, b.digest, b.prev, b.kid, b.kind, b.jws FROM batches b "
    "JOIN unnest(%s::text[], %s::int8[]) AS w(station, seq) "
    "ON b.station = w.station AND b.seq = w.seq"
)


@dataclass
class _Head:
    """A station's chain head as this transaction will leave it."""

    contiguous: int
    digest: str | None
    highest: int
    gap: bool = False  # seqs were held above ``contiguous`` when locked, not read yet
    above: dict[int, str] = field(default_factory=dict)  # seq -> digest held above contiguous
    batches: int = 0  # added by this transaction
    readings: int = 0
    received: datetime | None = None
    sealed: datetime | None = None  # of the new highest seq, if it moved


class Group:
    """The locked chains of one group transaction: ``chains`` maps each registered station of
    the group to its ``GroupChain``; ``flush()`` writes what they stored (before the commit)."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        store: PostgresStore,
        stations: list[str],
        seqs: Mapping[str, Iterable[int]] | None,
    ) -> None:
        self._conn, self._store = conn, store
        self.pending: list[NewBatch] = []
        wanted = [(st, s) for st in stations for s in set((seqs or {}).get(st, ())) if s >= 1]
        with conn.pipeline():  # one round trip: the lock first, then what it guards
            locked = conn.execute(_LOCK, (stations,))
            keys = conn.execute(_KEYS, (stations,))
            descriptors = conn.execute(_DESCRIPTORS, (stations,))
            at = conn.execute(_AT, ([w[0] for w in wanted], [w[1] for w in wanted]))
        self.chains: dict[str, GroupChain] = {
            st: GroupChain(self, st, _Head(c, d, h, h > c)) for st, c, d, h in locked.fetchall()
        }
        for st, *key in keys.fetchall():
            if st in self.chains:
                self.chains[st].key_rows.append(KeyRow(*key))
        for st, s in descriptors.fetchall():
            if st in self.chains:
                self.chains[st].descriptors.add(s)
        for st, s in wanted:
            if st in self.chains:
                self.chains[st].fetched.add(s)
        for st, s, digest, prev, kid, kind, jws in at.fetchall():
            self.chains[st].held[s] = Held(s, digest, prev, kid, kind, bytes(jws))

    def flush(self) -> None:
        """Write every batch, record, key, reading and head the group stored (no commit)."""
        if not self.pending:
            return
        conn, pending = self._conn, self.pending
        months = {month_of(ms) for ms in {r.time_ms for b in pending for r in b.readings}}
        if months:  # nothing of readings touched yet by this transaction: safe to wait for DDL
            self._store.partitions.ensure(months)
        with conn.pipeline(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO batches (station, seq, digest, prev, kid, kind, payload_version, "
                "descriptor, readings, unsynced, sealed_at, received_at, via, jws) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [_batch_row(b) for b in pending],
            )
            records = [
                (b.station, b.seq, b.kind, Jsonb(b.record_body), parse_iso(b.sealed_at))
                for b in pending
                if b.record_body is not None
            ]
            if records:
                cur.executemany(
                    "INSERT INTO records (station, seq, kind, body, sealed_at) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    records,
                )
            keys = [
                (b.station, k.from_seq, k.kid, Jsonb(k.jwk), k.rotation_seq)
                for b in pending
                if (k := b.new_key) is not None
            ]
            if keys:
                cur.executemany(
                    "INSERT INTO station_keys (station, from_seq, kid, jwk, source, rotation_seq) "
                    "VALUES (%s, %s, %s, %s, 'rotation', %s)",
                    keys,
                )
            cur.executemany(
                "UPDATE chain_heads SET contiguous_seq = %s, contiguous_digest = %s, "
                "batches = batches + %s, readings = readings + %s, last_received_at = %s, "
                "last_sealed_at = coalesce(%s, last_sealed_at), highest_seq = %s "
                "WHERE station = %s",
                [
                    (
                        h.contiguous,
                        h.digest,
                        h.batches,
                        h.readings,
                        h.received,
                        h.sealed,
                        h.highest,
                        st,
                    )
                    for st, chain in sorted(self.chains.items())
                    if (h := chain.head).batches
                ],
            )
        if months:
            with conn.cursor() as cur, cur.copy(_COPY) as copy:
                copy.set_types(_COPY_TYPES)
                for b in pending:
                    for r in b.readings:
                        copy.write_row(
                            (
                                b.station,
                                b.seq,
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
        self.pending = []


class GroupChain:
    """One station's chain inside a ``Group`` (the ``Chain`` protocol): reads from what the
    group read up front plus what it stored so far; a seq not read up front is read now."""

    def __init__(self, group: Group, station: str, head: _Head) -> None:
        self._group, self.station, self.head = group, station, head
        self.key_rows: list[KeyRow] = []
        self.descriptors: set[int] = set()
        self.held: dict[int, Held] = {}  # of the seqs in ``fetched``: those held
        self.fetched: set[int] = set()  # seqs whose batch (or its absence) is known here
        self._stored: list[NewBatch] = []

    def _read(self, seqs: Iterable[int]) -> None:
        missing = sorted(s for s in seqs if s not in self.fetched and s >= 1)
        if not missing:
            return
        rows = self._group._conn.execute(
            "SELECT seq, digest, prev, kid, kind, jws FROM batches "
            "WHERE station = %s AND seq = ANY(%s)",
            (self.station, missing),
        ).fetchall()
        for s, digest, prev, kid, kind, jws in rows:
            self.held[s] = Held(s, digest, prev, kid, kind, bytes(jws))
        self.fetched.update(missing)

    def keys(self) -> list[KeyRow]:
        return list(self.key_rows)

    def near(self, seq: int) -> dict[int, Held]:
        self._read((seq - 1, seq, seq + 1))
        return {s: self.held[s] for s in (seq - 1, seq, seq + 1) if s in self.held}

    def kind_at(self, seq: int) -> str | None:
        self._read((seq,))
        held = self.held.get(seq)
        return held.kind if held is not None else None

    def refused_at(self, seq: int) -> bool:
        row = self._group._conn.execute(
            "SELECT 1 FROM refusals WHERE station = %s AND seq = %s LIMIT 1", (self.station, seq)
        ).fetchone()
        return row is not None

    def latest_descriptor_below(self, seq: int) -> int | None:
        return max((s for s in self.descriptors if s < seq), default=None)

    def first_after(self, seq: int, kid: str) -> int | None:
        row = self._group._conn.execute(
            "SELECT min(seq) FROM batches WHERE station = %s AND seq > %s "
            "AND (kind = 'rotation' OR kid = %s)",
            (self.station, seq, kid),
        ).fetchone()
        found = [row[0]] if row and row[0] is not None else []
        found += [
            b.seq for b in self._stored if b.seq > seq and (b.kind == "rotation" or b.kid == kid)
        ]
        return min(found, default=None)

    def store(self, batch: NewBatch) -> None:
        self._group.pending.append(batch)
        self._stored.append(batch)
        seq = batch.seq
        self.held[seq] = Held(seq, batch.digest, batch.prev, batch.kid, batch.kind, batch.jws)
        self.fetched.add(seq)
        if batch.kind == "descriptor":
            self.descriptors.add(seq)
        if batch.new_key is not None:
            self.key_rows.append(batch.new_key)
            self.key_rows.sort(key=lambda k: k.from_seq)
        head = self.head
        head.batches += 1
        head.readings += len(batch.readings)
        head.received = batch.received_at
        if seq > head.highest:
            head.highest, head.sealed = seq, parse_iso(batch.sealed_at)
        if seq == head.contiguous + 1 and head.gap:  # fills the gap: read what lies above it
            head.gap = False
            for s, digest in self._group._conn.execute(
                "SELECT seq, digest FROM batches WHERE station = %s AND seq > %s",
                (self.station, head.contiguous),
            ).fetchall():
                head.above[s] = digest
        if seq > head.contiguous:
            head.above[seq] = batch.digest
        while head.contiguous + 1 in head.above:
            head.contiguous += 1
            head.digest = head.above.pop(head.contiguous)

    def refuse(self, refusal: Refusal) -> None:
        conn = self._group._conn
        conn.execute(
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
        conn.execute(
            "UPDATE chain_heads SET refused = refused + 1, chain_refused = chain_refused + %s "
            "WHERE station = %s",
            (int(refusal.chain), self.station),
        )
        if not refusal.signed:
            from warehouse.store import postgres  # its KEEP_UNSIGNED_REFUSALS (tests patch it)

            conn.execute(
                "DELETE FROM refusals WHERE station = %s AND NOT signed AND id <= (SELECT id FROM "
                "refusals WHERE station = %s AND NOT signed ORDER BY id DESC LIMIT 1 OFFSET %s)",
                (self.station, self.station, postgres.KEEP_UNSIGNED_REFUSALS),
            )


def _batch_row(b: NewBatch) -> tuple[Any, ...]:
    return (
        b.station,
        b.seq,
        b.digest,
        b.prev,
        b.kid,
        b.kind,
        b.payload_version,
        b.descriptor,
        len(b.readings),
        b.unsynced,
        parse_iso(b.sealed_at),
        b.received_at,
        b.via,
        b.jws,
    )
