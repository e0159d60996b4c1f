"""The batch chain: sealing unsealed readings into numbered, signed batches, and its head.

Table ``batches``: per batch its ``seq``, the range of reading ids it sealed, the JWS (header,
zlib-compressed payload, signature, stored once and never re-signed) and its chain digest
(``prev`` of the next batch), checked again before every send.

``seal`` seals one batch at a time in three steps, so that polls keep committing while a batch
is built: (1) under the buffer's lock, read the chain head and the next unsealed readings (a
moment); (2) with no lock held, build and sign the batch (the slow part); (3) one short write
transaction, fsynced (synchronous=FULL), that inserts it only if the head is still the one it
was built on. Nothing is written before that COMMIT, so a crash before it leaves no batch and
no used ``seq``. If the head moved (another writer appended to the chain meanwhile), the built
batch is dropped unstored and built again on the new head.

``seal_record`` seals a record (payload v3, a ``kind`` other than ``readings``) in one fsynced
transaction: next ``seq``, ``prev`` the head's digest (a readings batch being built meanwhile
sees the head moved and is built again after it). A record seals no readings: its row has
``count`` 0 and the reading range empty (``first_id`` = ``last_id`` + 1, ``last_id``
the head's, so "the last sealed reading" stays what it was); the ledger, retention, status and
requeue go by ``seq`` and treat it as any batch.
"""

from __future__ import annotations

import base64
import functools
import sqlite3
import zlib
from collections.abc import Callable

from agent.buffer.db import BufferFile
from agent.buffer.readings import ReadingRow, ReadingsStore
from agent.protocol.jws import b64url, chain_digest
from core.batch import SealedBatch
from core.errors import StorageError

MakeJws = Callable[[int, str | None, list[ReadingRow]], tuple[str, int]]
MakeRecordJws = Callable[[int, str | None], tuple[str, int]]  # (seq, prev) -> (JWS, sealed_at)
# The columns ``batch_from_row`` takes, in order (readers select them with this string).
BATCH_COLUMNS = "seq, count, sealed_at_ms, header, payload, signature, digest"
MAX_HEAD_MOVES = 3  # rebuilds of one batch whose head moved before this is an error


class Chain:
    """Seals the store's readings into the chain and reads batches back, checked."""

    def __init__(self, file: BufferFile, store: ReadingsStore) -> None:
        self.file, self.store = file, store

    def _head(self, conn: sqlite3.Connection) -> tuple[int, str | None, int]:
        row = conn.execute(
            "SELECT seq, digest, last_id FROM batches ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return (row[0], row[1], row[2]) if row else (0, None, 0)

    def last_sealed_id(self, conn: sqlite3.Connection) -> int:
        """The id of the last reading sealed (0: none), inside the caller's transaction."""
        return self._head(conn)[2]

    def head(self) -> tuple[int, str | None, int]:
        """(last seq, its chain digest, last sealed reading id); (0, None, 0) when empty."""
        with self.file.read() as conn:
            return self._head(conn)

    def seal(
        self, make_jws: MakeJws, *, max_readings: int, max_batches: int | None = None
    ) -> list[SealedBatch]:
        """Seal unsealed readings into batches of at most ``max_readings``.

        ``make_jws(seq, prev, rows)`` returns (compact JWS, sealed_at_ms); it runs without the
        buffer's lock. Each batch is committed with synchronous=FULL before the next is built
        and before this returns.
        """
        sealed: list[SealedBatch] = []
        while max_batches is None or len(sealed) < max_batches:
            batch = self._seal_one(make_jws, max_readings)
            if batch is None:
                break
            sealed.append(batch)
        return sealed

    def _seal_one(self, make_jws: MakeJws, max_readings: int) -> SealedBatch | None:
        for _attempt in range(MAX_HEAD_MOVES + 1):
            with self.file.read() as conn:  # (1) a moment under the lock
                head = self._head(conn)
                *ids, readings = self.store.rows_after(conn, head[2], max_readings)
            if not readings:
                return None
            seq = head[0] + 1
            jws, sealed_at_ms = make_jws(seq, head[1], readings)  # (2) no lock held
            batch = SealedBatch(seq, jws, len(readings), sealed_at_ms)
            insert = functools.partial(self._insert_if_head, head=head, batch=batch, ids=ids)
            stored = self.file.write("sealing a batch", insert, durable=True)  # (3) short, fsynced
            if stored:
                return batch
        raise StorageError(
            f"{self.file.path}: the chain head moved {MAX_HEAD_MOVES + 1} times while a batch "
            "was being sealed (another writer appending to the chain?)"
        )

    def _insert_if_head(
        self,
        conn: sqlite3.Connection,
        *,
        head: tuple[int, str | None, int],
        batch: SealedBatch,
        ids: list[int],
    ) -> bool:
        """Inside the sealing transaction: store ``batch`` if the head is still ``head``."""
        if self._head(conn) != head:
            return False
        first_id, last_id = ids
        span = (first_id, last_id, batch.count)
        self._insert(conn, batch.seq, span, batch.sealed_at_ms, batch.jws, "readings")
        return True

    def seal_record(self, kind: str, make_jws: MakeRecordJws) -> SealedBatch:
        """Seal one record as the next batch; committed with synchronous=FULL before this
        returns. ``make_jws(seq, prev)`` returns (compact JWS, sealed_at_ms)."""

        def seal(conn: sqlite3.Connection) -> SealedBatch:
            last_seq, prev, upto = self._head(conn)
            seq = last_seq + 1
            jws, sealed_at_ms = make_jws(seq, prev)
            self._insert(conn, seq, (upto + 1, upto, 0), sealed_at_ms, jws, kind)
            return SealedBatch(seq, jws, 0, sealed_at_ms)

        return self.file.write(f"sealing a {kind} record", seal, durable=True)

    @staticmethod
    def _insert(
        conn: sqlite3.Connection,
        seq: int,
        span: tuple[int, int, int],
        sealed_at_ms: int,
        jws: str,
        kind: str,
    ) -> None:
        header, payload_b64, signature = jws.split(".")
        conn.execute(
            "INSERT INTO batches (seq, first_id, last_id, count, sealed_at_ms, header, payload, "
            "signature, digest, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                seq,
                *span,
                sealed_at_ms,
                header,
                zlib.compress(_own_payload(payload_b64), 1),
                signature,
                chain_digest(jws),
                kind,
            ),
        )

    def batch_from_row(self, row: tuple) -> SealedBatch:
        """A stored batch (a row of ``BATCH_COLUMNS``), its bytes checked against its digest."""
        seq, count, sealed_at_ms, header, payload, signature, digest = row
        jws = f"{header}.{b64url(zlib.decompress(payload))}.{signature}"
        if chain_digest(jws) != digest:
            raise StorageError(
                f"{self.file.path}: batch {seq} is damaged on disk (digest mismatch)"
            )
        return SealedBatch(seq, jws, count, sealed_at_ms)

    # --- for retention, inside its transaction ------------------------------------------------
    def first_sealed_since(
        self, conn: sqlite3.Connection, upto_seq: int, time_ms: int
    ) -> int | None:
        """The lowest seq up to ``upto_seq`` sealed at or after ``time_ms``."""
        return conn.execute(
            "SELECT min(seq) FROM batches WHERE seq <= ? AND sealed_at_ms >= ?", (upto_seq, time_ms)
        ).fetchone()[0]

    def last_aged(self, conn: sqlite3.Connection, age_ms: int, max_gap_ms: int) -> int | None:
        """The highest seq followed by at least ``age_ms`` of sealing time, each gap between
        consecutive batches counted between 0 and ``max_gap_ms`` (a clock jump is not age)."""
        return conn.execute(
            "SELECT max(seq) FROM (SELECT seq, coalesce(sum(gap) OVER (ORDER BY seq DESC "
            "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS after FROM (SELECT seq, "
            "min(max(sealed_at_ms - coalesce(lag(sealed_at_ms) OVER (ORDER BY seq), "
            "sealed_at_ms), 0), ?) AS gap FROM batches)) WHERE after >= ?",
            (max_gap_ms, age_ms),
        ).fetchone()[0]

    def seq_holding(self, conn: sqlite3.Connection, reading_id: int) -> int | None:
        """The batch that sealed reading ``reading_id`` (or the first after it), if sealed."""
        return conn.execute(
            "SELECT min(seq) FROM batches WHERE last_id >= ?", (reading_id,)
        ).fetchone()[0]

    def last_upto(self, conn: sqlite3.Connection, upto_seq: int) -> tuple[int, int] | None:
        """(seq, last reading id) of the newest batch at or below ``upto_seq``."""
        row = conn.execute(
            "SELECT seq, last_id FROM batches WHERE seq <= ? ORDER BY seq DESC LIMIT 1",
            (upto_seq,),
        ).fetchone()
        return (row[0], row[1]) if row else None

    def delete_upto(self, conn: sqlite3.Connection, seq: int) -> None:
        conn.execute("DELETE FROM batches WHERE seq <= ?", (seq,))


def _own_payload(payload_b64: str) -> bytes:
    """The bytes of a payload this agent has just encoded (no canonical-spelling check: that is
    for JWS read from outside; what is stored is checked against its digest when read back)."""
    return base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4))
