"""What the record kinds (``agent.records``) and ``status`` read and write of the buffer besides
readings: ``meta`` rows, record batches by kind, which transports acknowledged a batch, and the
oldest reading a transport still owes.

The callers decode the payloads themselves (the record bodies are theirs); this part only runs
the SQL, through the buffer file's one lock and transaction discipline (``agent.buffer.db``).
"""

from __future__ import annotations

import sqlite3

from agent.buffer import asks
from agent.buffer.db import BufferFile
from agent.buffer.ledger import ACKED


class RecordRows:
    """Meta rows and record batches, by key and kind."""

    def __init__(self, file: BufferFile) -> None:
        self.file = file

    def meta(self, key: str) -> str | None:
        """The ``meta`` row ``key`` (None: not written yet)."""
        with self.file.read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put_meta(self, what: str, key: str, value: str, *, ask: bool = False) -> None:
        """Write the ``meta`` row ``key`` in one durable transaction; ``ask``: it is a request
        to the running agent, counted (``agent.buffer.asks``) in the same transaction."""

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
            if ask:
                asks.bump(conn)

        self.file.write(what, write, durable=True)

    def of_kind(self, kind: str) -> list[tuple[int, bytes]]:
        """(seq, payload) of every batch of ``kind`` still in the buffer, oldest first."""
        with self.file.read() as conn:
            rows = conn.execute(
                "SELECT seq, payload FROM batches WHERE kind = ? ORDER BY seq", (kind,)
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def newest_of_kind(self, kind: str) -> tuple[int, bytes] | None:
        """(seq, payload) of the newest batch of ``kind``; None when there is none."""
        with self.file.read() as conn:
            row = conn.execute(
                "SELECT seq, payload FROM batches WHERE kind = ? ORDER BY seq DESC LIMIT 1",
                (kind,),
            ).fetchone()
        return (row[0], row[1]) if row else None

    def newest(self) -> tuple[int, str, str, bytes] | None:
        """(seq, kind, header, payload) of the chain's newest batch; None for an empty chain."""
        with self.file.read() as conn:
            row = conn.execute(
                "SELECT seq, kind, header, payload FROM batches ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return (row[0], row[1], row[2], row[3]) if row else None

    def sealed_at_ms(self, seq: int) -> int | None:
        """When batch ``seq`` was sealed; None when it is not (or no longer) in the buffer."""
        with self.file.read() as conn:
            row = conn.execute("SELECT sealed_at_ms FROM batches WHERE seq = ?", (seq,)).fetchone()
        return row[0] if row else None

    def oldest_unacked_reading_ms(self, transport: str) -> int | None:
        """When the oldest reading not yet acknowledged by ``transport`` was taken (readings are
        stored in time order, so it is the first one of the oldest batch it still owes, or the
        first unsealed one). None when it owes nothing."""
        with self.file.read() as conn:
            row = conn.execute(
                "SELECT first_id FROM batches b WHERE NOT EXISTS (SELECT 1 FROM deliveries d "
                "WHERE d.transport = ? AND d.seq = b.seq) ORDER BY seq LIMIT 1",
                (transport,),
            ).fetchone()
            if row is None:
                head = conn.execute("SELECT max(last_id) FROM batches").fetchone()
                first_id = (head[0] or 0) + 1
            else:
                first_id = row[0]
            reading = conn.execute(
                "SELECT time_ms FROM readings WHERE id >= ? ORDER BY id LIMIT 1", (first_id,)
            ).fetchone()
        return reading[0] if reading else None

    def acked_by(self, seq: int) -> set[str]:
        """The transports that acknowledged batch ``seq``."""
        with self.file.read() as conn:
            rows = conn.execute(
                "SELECT transport FROM deliveries WHERE seq = ? AND state = ?", (seq, ACKED)
            ).fetchall()
        return {r[0] for r in rows}
