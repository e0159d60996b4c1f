"""The local buffer: every reading, every sealed batch and every acknowledgement, in SQLite.

Durability, stated once (docs/durability.md proves each with a test):

* ``store_poll`` returns only after the readings are committed (WAL). With
  ``durability = "power"`` (default) that commit is fsynced: it survives a power cut; with
  ``"process"`` it survives a crash of the agent, and the next seal's fsync covers it.
* ``seal`` assigns ``seq``, builds and signs the payload and commits it in one transaction,
  fsynced (synchronous=FULL) before it returns. A batch is only ever sent after that, so a crash
  can never make the agent issue the same ``seq`` with different content.
* ``mark_acked`` records a transport's acknowledgement; losing it to a power cut only causes a
  re-send of byte-identical bytes, which the warehouse de-duplicates.
* Nothing that is not acknowledged by every configured transport is ever pruned.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.jws import b64url, b64url_decode, chain_digest
from core.batch import SealedBatch
from core.errors import DiskFullError, StorageError
from core.reading import Reading

SCHEMA_VERSION = 1
ACKED, QUARANTINED = 1, 2
_STATUS_CODE = {"00": 0, "01": 1, "02": 2}
_STATUS_TEXT = ("00", "01", "02")


@dataclass(frozen=True, slots=True)
class ReadingRow:
    device: str
    param: str
    unit: str
    time_ms: int
    value: float | int | str | None
    status: str


def _is_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "full" in str(exc)


class Buffer:
    """The agent's SQLite buffer. Thread-safe: one connection, one lock."""

    def __init__(
        self, path: Path, *, durability: str = "power", max_disk_mb: float | None = None
    ) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._durable_commits = durability == "power"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA cache_size=-1024")  # 1 MiB: RSS must not grow with a backlog
            self._sync("FULL" if self._durable_commits else "NORMAL")
            self._create_schema()
            quick = self._conn.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StorageError(
                f"{self.path}: cannot open the buffer: {exc}. If the file is damaged, see "
                "docs/durability.md ('A damaged buffer.db'): move it aside, never delete it."
            ) from None
        if quick != "ok":
            raise StorageError(
                f"{self.path}: the buffer is damaged (quick_check: {quick}). Move it aside "
                "(see docs/durability.md, 'A damaged buffer.db'); never delete it."
            )
        if max_disk_mb is not None:
            page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
            pages = max(int(max_disk_mb * 1024 * 1024 / page_size), 16)
            self._conn.execute(f"PRAGMA max_page_count={pages}")
        self._channels: dict[tuple[str, str, str], int] = {}
        self._channel_names: dict[int, tuple[str, str, str]] = {}
        for cid, device, param, unit in self._conn.execute(
            "SELECT id, device, param, unit FROM channels"
        ):
            self._channels[(device, param, unit)] = cid
            self._channel_names[cid] = (device, param, unit)

    # --- schema ---------------------------------------------------------------------------
    def _create_schema(self) -> None:
        exists = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        if exists:
            return
        import sqlite_utils  # only needed once, to create the schema: keeps the daemon small

        db = sqlite_utils.Database(self._conn)
        # Each step is idempotent, and ``meta`` (the marker) comes last: a crash half-way
        # through creating the schema is finished at the next start.
        db["channels"].create(
            {"id": int, "device": str, "param": str, "unit": str}, pk="id", if_not_exists=True
        )
        db["channels"].create_index(["device", "param", "unit"], unique=True, if_not_exists=True)
        # value has no declared type (no affinity): SQLite keeps an int, a float or a text as
        # given; a FLOAT column would turn -123456 into -123456.0 and the text "0042" into 42.0
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS [readings] ([id] INTEGER PRIMARY KEY, [channel] INTEGER,"
            " [time_ms] INTEGER, [value], [status] INTEGER)"
        )
        db["batches"].create(
            {
                "seq": int,
                "first_id": int,
                "last_id": int,
                "count": int,
                "sealed_at_ms": int,
                "header": str,
                "payload": bytes,
                "signature": str,
                "digest": str,
            },
            pk="seq",
            if_not_exists=True,
        )
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS deliveries (transport TEXT, seq INTEGER, state INTEGER, "
            "at_ms INTEGER, detail TEXT, PRIMARY KEY (transport, seq)) WITHOUT ROWID"
        )
        db["devices"].create(
            {
                "name": str,
                "last_good_ms": int,
                "last_error": str,
                "last_error_ms": int,
                "polls": int,
                "faults": int,
            },
            pk="name",
            if_not_exists=True,
        )
        db["meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
        db["meta"].insert({"key": "schema_version", "value": str(SCHEMA_VERSION)})

    def _sync(self, mode: str) -> None:
        self._conn.execute(f"PRAGMA synchronous={mode}")

    class _Tx:
        def __init__(self, buffer: Buffer, durable: bool) -> None:
            self.buffer, self.durable = buffer, durable

        def __enter__(self) -> sqlite3.Connection:
            self.buffer._lock.acquire()
            try:
                if self.durable and not self.buffer._durable_commits:
                    self.buffer._sync("FULL")
                self.buffer._conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.buffer._lock.release()
                raise
            return self.buffer._conn

        def __exit__(self, exc_type, exc, tb) -> None:
            conn = self.buffer._conn
            try:
                if exc_type is None:
                    conn.execute("COMMIT")
                elif conn.in_transaction:  # SQLite may have rolled back already (disk full)
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                if self.durable and not self.buffer._durable_commits:
                    self.buffer._sync("NORMAL")
                self.buffer._lock.release()

    def _transaction(self, durable: bool = False) -> Buffer._Tx:
        return Buffer._Tx(self, durable)

    def _write(self, what: str, fn: Callable[[sqlite3.Connection], object], durable=False):
        try:
            with self._transaction(durable) as conn:
                return fn(conn)
        except sqlite3.Error as exc:
            if _is_full(exc):
                raise DiskFullError(
                    f"{self.path}: buffer full while {what} (disk or max_disk_mb); "
                    "data already stored is kept"
                ) from None
            raise StorageError(f"{self.path}: {what} failed: {exc}") from None

    # --- ingest ---------------------------------------------------------------------------
    def _channel_id(self, conn: sqlite3.Connection, key: tuple[str, str, str]) -> int:
        cid = self._channels.get(key)
        if cid is None:
            cur = conn.execute("INSERT INTO channels (device, param, unit) VALUES (?, ?, ?)", key)
            cid = int(cur.lastrowid)
            self._channels[key] = cid
            self._channel_names[cid] = key
        return cid

    def store_poll(
        self,
        readings: Sequence[Reading],
        *,
        device: str | None = None,
        error: str | None = None,
        time_ms: int | None = None,
    ) -> None:
        """Commit one poll's readings (and the device's state) before returning."""
        added: list[tuple[str, str, str]] = []

        def store(conn: sqlite3.Connection) -> None:
            rows = []
            for r in readings:
                key = (r.device, r.param, r.unit)
                if key not in self._channels:
                    added.append(key)
                rows.append(
                    (self._channel_id(conn, key), r.time_ms, r.value, _STATUS_CODE[r.status])
                )
            conn.executemany(
                "INSERT INTO readings (channel, time_ms, value, status) VALUES (?, ?, ?, ?)",
                rows,
            )
            if device is not None:
                good = error is None
                at = time_ms if time_ms is not None else (readings[0].time_ms if readings else 0)
                conn.execute(
                    "INSERT INTO devices (name, last_good_ms, last_error, last_error_ms, polls, "
                    "faults) VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT (name) DO UPDATE SET "
                    "polls = polls + 1, faults = faults + excluded.faults, "
                    "last_good_ms = coalesce(excluded.last_good_ms, last_good_ms), "
                    "last_error = coalesce(excluded.last_error, last_error), "
                    "last_error_ms = coalesce(excluded.last_error_ms, last_error_ms)",
                    (
                        device,
                        at if good else None,
                        error,
                        None if good else at,
                        0 if good else 1,
                    ),
                )

        try:
            self._write("storing readings", store)
        except Exception:
            for key in added:  # the rollback removed them; forget the cached ids too
                cid = self._channels.pop(key, None)
                self._channel_names.pop(cid, None)
            raise

    # --- sealing --------------------------------------------------------------------------
    def chain_head(self) -> tuple[int, str | None, int]:
        """(last seq, its chain digest, last sealed reading id); (0, None, 0) when empty."""
        with self._lock:
            row = self._conn.execute(
                "SELECT seq, digest, last_id FROM batches ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return (row[0], row[1], row[2]) if row else (0, None, 0)

    def seal(
        self,
        make_jws: Callable[[int, str | None, list[ReadingRow]], tuple[str, int]],
        *,
        max_readings: int,
        max_batches: int | None = None,
    ) -> list[SealedBatch]:
        """Seal unsealed readings into batches of at most ``max_readings``.

        ``make_jws(seq, prev, rows)`` returns (compact JWS, sealed_at_ms). Each batch is committed
        with synchronous=FULL before the next is built and before this returns.
        """
        sealed: list[SealedBatch] = []
        while max_batches is None or len(sealed) < max_batches:
            batch = self._write(
                "sealing a batch",
                lambda conn: self._seal_one(conn, make_jws, max_readings),
                durable=True,
            )
            if batch is None:
                break
            sealed.append(batch)
        return sealed

    def _seal_one(self, conn, make_jws, max_readings: int) -> SealedBatch | None:
        row = conn.execute(
            "SELECT seq, digest, last_id FROM batches ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        last_seq, prev, upto = row if row else (0, None, 0)
        rows = conn.execute(
            "SELECT id, channel, time_ms, value, status FROM readings WHERE id > ? "
            "ORDER BY id LIMIT ?",
            (upto, max_readings),
        ).fetchall()
        if not rows:
            return None
        names = self._channel_names
        readings = [
            ReadingRow(*names[channel], time_ms, value, _STATUS_TEXT[status])
            for _id, channel, time_ms, value, status in rows
        ]
        seq = last_seq + 1
        jws, sealed_at_ms = make_jws(seq, prev, readings)
        header, payload_b64, signature = jws.split(".")
        payload = b64url_decode(payload_b64)
        conn.execute(
            "INSERT INTO batches (seq, first_id, last_id, count, sealed_at_ms, header, payload, "
            "signature, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                seq,
                rows[0][0],
                rows[-1][0],
                len(rows),
                sealed_at_ms,
                header,
                zlib.compress(payload, 1),
                signature,
                chain_digest(jws),
            ),
        )
        return SealedBatch(seq, jws, len(rows), sealed_at_ms)

    # --- sending --------------------------------------------------------------------------
    def _load(self, row: tuple) -> SealedBatch:
        seq, count, sealed_at_ms, header, payload, signature, digest = row
        jws = f"{header}.{b64url(zlib.decompress(payload))}.{signature}"
        if chain_digest(jws) != digest:
            raise StorageError(f"{self.path}: batch {seq} is damaged on disk (digest mismatch)")
        return SealedBatch(seq, jws, count, sealed_at_ms)

    def pending(
        self,
        transport: str,
        *,
        after: int = 0,
        exclude: Iterable[int] = (),
        limit: int = 20,
        max_bytes: int | None = None,
    ) -> list[SealedBatch]:
        """Batches not yet acknowledged nor quarantined for ``transport``, oldest first: at most
        ``limit`` of them and, past the first, at most ``max_bytes`` of JWS in all."""
        skip = set(exclude)
        out: list[SealedBatch] = []
        size = 0
        with self._lock:
            cur = self._conn.execute(
                "SELECT seq, count, sealed_at_ms, header, payload, signature, digest "
                "FROM batches b WHERE seq > ? AND NOT EXISTS (SELECT 1 FROM deliveries d "
                "WHERE d.transport = ? AND d.seq = b.seq) ORDER BY seq",
                (after, transport),
            )
            for row in cur:
                if row[0] in skip:
                    continue
                batch = self._load(row)
                size += len(batch.jws)
                if out and max_bytes is not None and size > max_bytes:
                    break
                out.append(batch)
                if len(out) >= limit:
                    break
            cur.close()
        return out

    def requeue_marker(self, transport: str) -> tuple[int, list[int]] | None:
        """(when, seqs) of the last ``requeue`` for ``transport``, or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM meta WHERE key = ?", (f"requeue:{transport}",)
            ).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        return data["at"], data["seqs"]

    def first_pending_seq(self, transport: str) -> int | None:
        """The oldest batch ``transport`` still owes, or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT min(seq) FROM batches b WHERE NOT EXISTS (SELECT 1 FROM deliveries d "
                "WHERE d.transport = ? AND d.seq = b.seq)",
                (transport,),
            ).fetchone()
        return row[0]

    def mark_acked(self, transport: str, seqs: Iterable[int], at_ms: int) -> None:
        """Record that ``transport``'s destination acknowledged these batches."""
        rows = [(transport, s, ACKED, at_ms, None) for s in seqs]
        self._write(
            "recording an acknowledgement",
            lambda conn: conn.executemany(
                "INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?, ?, ?)", rows
            ),
        )

    def quarantine(self, transport: str, seq: int, at_ms: int, reason: str) -> None:
        """Record that ``transport``'s destination rejected a batch for good (kept, reported)."""
        self._write(
            "quarantining a batch",
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?, ?)",
                (transport, seq, QUARANTINED, at_ms, reason[:500]),
            ),
        )

    def requeue(self, transport: str, seqs: Sequence[int] | None = None) -> list[int]:
        """Make quarantined batches (all, or these seqs) pending again for ``transport``.
        Returns the seqs requeued; a running agent's sender picks them up within seconds."""

        def requeue(conn: sqlite3.Connection) -> list[int]:
            rows = conn.execute(
                "SELECT seq FROM deliveries WHERE transport = ? AND state = ? ORDER BY seq",
                (transport, QUARANTINED),
            ).fetchall()
            chosen = [s for (s,) in rows if seqs is None or s in set(seqs)]
            conn.executemany(
                "DELETE FROM deliveries WHERE transport = ? AND seq = ? AND state = ?",
                [(transport, s, QUARANTINED) for s in chosen],
            )
            if chosen:  # tells a running agent's sender to look back for them
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    (f"requeue:{transport}", json.dumps({"at": time.time_ns(), "seqs": chosen})),
                )
            return chosen

        return self._write("requeueing quarantined batches", requeue)

    # --- upkeep ---------------------------------------------------------------------------
    def prune(self, transports: Sequence[str], older_than_ms: int) -> int:
        """Delete the oldest batches (and their readings) that every transport acknowledged
        before ``older_than_ms`` and that were sealed before it: always a prefix of the chain,
        never a batch still owed or quarantined anywhere, never the newest batch (it carries
        the chain head). Returns the number of readings deleted."""
        if not transports:
            return 0
        names = ",".join("?" * len(transports))

        def prune(conn: sqlite3.Connection) -> int:
            floor = conn.execute("SELECT max(seq) FROM batches").fetchone()[0]
            if floor is None:
                return 0
            floor -= 1
            for name in transports:
                first_unacked = conn.execute(
                    "SELECT min(seq) FROM batches b WHERE NOT EXISTS (SELECT 1 FROM deliveries "
                    f"d WHERE d.transport = ? AND d.seq = b.seq AND d.state = {ACKED})",
                    (name,),
                ).fetchone()[0]
                if first_unacked is not None:
                    floor = min(floor, first_unacked - 1)
            # The first batch too young by its sealing or by its last acknowledgement ends the
            # prefix (the clock may have gone backwards, so seq order is not time order).
            too_young = conn.execute(
                "SELECT min(b.seq) FROM batches b WHERE b.seq <= ? AND (b.sealed_at_ms >= ? OR "
                f"(SELECT max(d.at_ms) FROM deliveries d WHERE d.seq = b.seq AND d.state = {ACKED} "
                f"AND d.transport IN ({names})) >= ?)",
                (floor, older_than_ms, *transports, older_than_ms),
            ).fetchone()[0]
            if too_young is not None:
                floor = min(floor, too_young - 1)
            row = conn.execute(
                "SELECT seq, last_id FROM batches WHERE seq <= ? ORDER BY seq DESC LIMIT 1",
                (floor,),
            ).fetchone()
            if row is None:
                return 0
            upto_seq, upto_id = row
            deleted = conn.execute("DELETE FROM readings WHERE id <= ?", (upto_id,)).rowcount
            conn.execute("DELETE FROM batches WHERE seq <= ?", (upto_seq,))
            conn.execute("DELETE FROM deliveries WHERE seq <= ?", (upto_seq,))
            return deleted

        return self._write("pruning old readings", prune)

    def readings(self, first_id: int = 0, limit: int = 1_000_000) -> list[ReadingRow]:
        """Stored readings in order (for inspection and tests)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT channel, time_ms, value, status FROM readings WHERE id > ? "
                "ORDER BY id LIMIT ?",
                (first_id, limit),
            ).fetchall()
        return [ReadingRow(*self._channel_names[c], t, v, _STATUS_TEXT[s]) for c, t, v, s in rows]

    def integrity_check(self) -> str:
        with self._lock:
            return self._conn.execute("PRAGMA integrity_check").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
