"""The delivery ledger: per transport, which batches were acknowledged or quarantined.

Table ``deliveries`` (transport, seq, state, at_ms, detail): no row = still owed to that
transport; ``ACKED`` = its destination acknowledged the batch; ``QUARANTINED`` = it refused the
batch for good (kept, reported by ``status``, never pruned, sent again only after ``requeue``).
An acknowledgement is recorded only after the destination's ack; losing it to a power cut causes
a byte-identical re-send, which the warehouse de-duplicates.

``requeue`` (run by ``station-agent requeue`` in another process) tells the running agent's
sender through ``meta`` row ``requeue:<transport>`` = {"at": ns, "seqs": [...]}.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence

from agent.buffer.chain import BATCH_COLUMNS, Chain
from agent.buffer.db import BufferFile
from core.batch import SealedBatch

ACKED, QUARANTINED = 1, 2
FRESH_SCAN = 1000  # batches read back from the head, at most, to find the fresh ones
_OWED = "NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.transport = ? AND d.seq = b.seq)"


class DeliveryLedger:
    """Acknowledgements and quarantine, per transport."""

    def __init__(self, file: BufferFile, chain: Chain) -> None:
        self.file, self.chain = file, chain

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
        with self.file.read() as conn:
            cur = conn.execute(
                f"SELECT {BATCH_COLUMNS} FROM batches b WHERE seq > ? AND {_OWED} ORDER BY seq",
                (after, transport),
            )
            for row in cur:
                if row[0] in skip:
                    continue
                batch = self.chain.batch_from_row(row)
                size += len(batch.jws)
                if out and max_bytes is not None and size > max_bytes:
                    break
                out.append(batch)
                if len(out) >= limit:
                    break
            cur.close()
        return out

    def oldest_fresh(
        self, transport: str, *, sealed_since_ms: int, exclude: Iterable[int] = ()
    ) -> SealedBatch | None:
        """The oldest batch ``transport`` owes among those sealed at or after ``sealed_since_ms``
        (not in ``exclude``). Reads back from the chain's head only, at most ``FRESH_SCAN``
        batches, so a clock that jumped back cannot make it scan the whole chain."""
        skip = set(exclude)
        with self.file.read() as conn:
            cur = conn.execute(
                f"SELECT seq, sealed_at_ms, {_OWED} FROM batches b ORDER BY seq DESC LIMIT ?",
                (transport, FRESH_SCAN),
            )
            oldest = None
            for seq, sealed_at_ms, owed in cur:
                if sealed_at_ms < sealed_since_ms:
                    break
                if owed and seq not in skip:
                    oldest = seq
            cur.close()
            if oldest is None:
                return None
            row = conn.execute(
                f"SELECT {BATCH_COLUMNS} FROM batches WHERE seq = ?", (oldest,)
            ).fetchone()
        return self.chain.batch_from_row(row)

    def first_pending_seq(self, transport: str) -> int | None:
        """The oldest batch ``transport`` still owes, or None."""
        with self.file.read() as conn:
            return conn.execute(
                f"SELECT min(seq) FROM batches b WHERE {_OWED}", (transport,)
            ).fetchone()[0]

    def mark_acked(self, transport: str, seqs: Iterable[int], at_ms: int) -> None:
        """Record that ``transport``'s destination acknowledged these batches."""
        rows = [(transport, s, ACKED, at_ms, None) for s in seqs]
        self.file.write(
            "recording an acknowledgement",
            lambda conn: conn.executemany(
                "INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?, ?, ?)", rows
            ),
        )

    def quarantine(self, transport: str, seq: int, at_ms: int, reason: str) -> None:
        """Record that ``transport``'s destination rejected a batch for good (kept, reported)."""
        self.file.write(
            "quarantining a batch",
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?, ?)",
                (transport, seq, QUARANTINED, at_ms, reason[:500]),
            ),
        )

    def requeue(self, transport: str, seqs: Sequence[int] | None = None) -> list[int]:
        """Make quarantined batches (all, or these seqs) pending again for ``transport``.
        Returns the seqs requeued; a running agent's sender picks them up within seconds."""

        wanted = None if seqs is None else set(seqs)

        def requeue(conn: sqlite3.Connection) -> list[int]:
            chosen = [
                seq
                for seq, _reason in self._quarantined(conn, transport)
                if wanted is None or seq in wanted
            ]
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

        return self.file.write("requeueing quarantined batches", requeue)

    def requeue_marker(self, transport: str) -> tuple[int, list[int]] | None:
        """(when, seqs) of the last ``requeue`` for ``transport``, or None."""
        with self.file.read() as conn:
            row = conn.execute(
                "SELECT value FROM meta WHERE key = ?", (f"requeue:{transport}",)
            ).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        return data["at"], data["seqs"]

    # --- what status reads ----------------------------------------------------------------
    def backlog(self, transport: str) -> tuple[int, int, int | None]:
        """(batches owed, readings in them, oldest seq owed) for ``transport``."""
        with self.file.read() as conn:
            row = conn.execute(
                f"SELECT count(*), coalesce(sum(count), 0), min(seq) FROM batches b WHERE {_OWED}",
                (transport,),
            ).fetchone()
        return row[0], row[1], row[2]

    def last_acked(self, transport: str) -> tuple[int, int] | None:
        """(seq, at_ms) of the newest batch ``transport`` acknowledged."""
        with self.file.read() as conn:
            row = conn.execute(
                "SELECT seq, at_ms FROM deliveries WHERE transport = ? AND state = ? "
                "ORDER BY seq DESC LIMIT 1",
                (transport, ACKED),
            ).fetchone()
        return (row[0], row[1]) if row else None

    def quarantined(self, transport: str) -> list[tuple[int, str]]:
        """(seq, reason) of every batch quarantined for ``transport``, oldest first."""
        with self.file.read() as conn:
            return self._quarantined(conn, transport)

    def _quarantined(self, conn: sqlite3.Connection, transport: str) -> list[tuple[int, str]]:
        return conn.execute(
            "SELECT seq, detail FROM deliveries WHERE transport = ? AND state = ? ORDER BY seq",
            (transport, QUARANTINED),
        ).fetchall()

    # --- for retention, inside its transaction ------------------------------------------------
    def first_unacked_seq(self, conn: sqlite3.Connection, transport: str) -> int | None:
        """The lowest seq ``transport`` has not acknowledged (owed or quarantined)."""
        return conn.execute(
            "SELECT min(seq) FROM batches b WHERE NOT EXISTS (SELECT 1 FROM deliveries d "
            f"WHERE d.transport = ? AND d.seq = b.seq AND d.state = {ACKED})",
            (transport,),
        ).fetchone()[0]

    def first_unacked(
        self, conn: sqlite3.Connection, transport: str
    ) -> tuple[int, int, int | None] | None:
        """(seq, sealed_at_ms, quarantined_at_ms or None) of the lowest batch ``transport`` has
        not acknowledged: retention keeps it and everything after it."""
        row = conn.execute(
            "SELECT b.seq, b.sealed_at_ms, d.state, d.at_ms FROM batches b LEFT JOIN deliveries d "
            f"ON d.transport = ? AND d.seq = b.seq WHERE d.state IS NOT {ACKED} "
            "ORDER BY b.seq LIMIT 1",
            (transport,),
        ).fetchone()
        if row is None:
            return None
        return row[0], row[1], row[3] if row[2] == QUARANTINED else None

    def first_acked_since(
        self, conn: sqlite3.Connection, transports: Sequence[str], upto_seq: int, time_ms: int
    ) -> int | None:
        """The lowest seq up to ``upto_seq`` that one of ``transports`` acknowledged at or after
        ``time_ms``."""
        names = ",".join("?" * len(transports))
        return conn.execute(
            f"SELECT min(seq) FROM deliveries WHERE state = {ACKED} AND transport IN ({names}) "
            "AND seq <= ? AND at_ms >= ?",
            (*transports, upto_seq, time_ms),
        ).fetchone()[0]

    def delete_upto(self, conn: sqlite3.Connection, seq: int) -> None:
        conn.execute("DELETE FROM deliveries WHERE seq <= ?", (seq,))
