"""The local buffer: every reading, every sealed batch and every acknowledgement, in SQLite.

One file, split by concern into parts that share it:

| part | module | tables |
|---|---|---|
| the file: connection, lock, transactions | ``db.BufferFile`` | |
| schema version and migrations | ``schema`` | (all) |
| readings store (ingest, by id, by time) | ``readings.ReadingsStore`` | channels, readings |
| batch chain (seal, head) | ``chain.Chain`` | batches |
| delivery ledger (acks, quarantine, requeue) | ``ledger.DeliveryLedger`` | deliveries, meta |
| retention (prune, consumers' holds) | ``retention.Retention`` | |
| device health | ``devices.DeviceHealth`` | devices |
| maintenance windows | ``maintenance.MaintenanceLog`` | maintenance |
| meta rows, record batches by kind | ``records.RecordRows`` | meta, batches, deliveries |
| TT10 files delivered (own connection) | ``tt10.Tt10Ledger`` | tt10_files, tt10_cursor |

**How a transaction is taken** (the one discipline; see ``db``): every write goes through
``BufferFile.write(what, fn)``: the one connection's lock, ``BEGIN IMMEDIATE``, ``fn(conn)``,
``COMMIT`` or ``ROLLBACK``, SQLite errors turned into ``StorageError``/``DiskFullError``. A part's
method that takes ``conn`` runs inside its caller's transaction and never begins one; the other
methods take the lock (reads) or a transaction (writes) themselves. A write that spans parts (a
poll's readings and its device's health; pruning) is one ``write`` whose ``fn`` calls each part.
``Buffer(path, read_only=True)`` opens the same parts on a read-only connection (``status``).

Durability, stated once (docs/durability.md proves each with a test):

* ``store_poll`` returns only after the readings are committed (WAL). With
  ``durability = "power"`` (default) that commit is fsynced: it survives a power cut; with
  ``"process"`` it survives a crash of the agent, and the next seal's fsync covers it.
* ``seal`` builds and signs the next batch without the lock (polls go on), then commits it in
  one short transaction, fsynced (synchronous=FULL), if the chain head has not moved (see
  ``chain``). A batch is only ever sent after that, so a crash can never make the agent issue
  the same ``seq`` with different content.
* ``mark_acked`` records a transport's acknowledgement; losing it to a power cut only causes a
  re-send of byte-identical bytes, which the warehouse de-duplicates.
* Nothing that is not acknowledged by every configured transport is ever pruned.

``Buffer`` below only wires the parts together and keeps the calls the poller, sealer, senders,
daemon and CLI make; new code may use the parts (``buffer.store``, ``.chain``, ``.ledger``,
``.retention``, ``.devices``) directly.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from agent.buffer import asks as asks_counter
from agent.buffer.chain import Chain, MakeJws, MakeRecordJws
from agent.buffer.db import BufferFile
from agent.buffer.devices import DeviceHealth, DeviceState
from agent.buffer.ledger import ACKED, QUARANTINED, DeliveryLedger
from agent.buffer.maintenance import MaintenanceLog
from agent.buffer.readings import ReadingRow, ReadingsStore
from agent.buffer.records import RecordRows
from agent.buffer.retention import ReadingsConsumer, Retention
from agent.buffer.schema import SCHEMA_VERSION
from core.batch import SealedBatch
from core.reading import Reading

# One poll to store: (device, readings, error, time_ms, unsynced); see ``Buffer.store_poll``.
Poll = tuple[str | None, Sequence[Reading], str | None, int | None, bool]

# What a read of the buffer raises when the file is damaged or not a buffer (``status``).
DatabaseError = sqlite3.DatabaseError

__all__ = [
    "ACKED",
    "DatabaseError",
    "QUARANTINED",
    "SCHEMA_VERSION",
    "Buffer",
    "DeviceState",
    "Poll",
    "ReadingRow",
    "ReadingsConsumer",
]


class Buffer:
    """The agent's buffer: the parts above over one ``BufferFile``. Thread-safe."""

    def __init__(
        self,
        path: Path,
        *,
        durability: str = "power",
        max_disk_mb: float | None = None,
        read_only: bool = False,
        create: bool = True,
    ) -> None:
        """``create=False``: refuse (StorageError) a buffer that does not exist yet; only
        ``run`` creates one."""
        self.file = BufferFile(
            path,
            durability=durability,
            max_disk_mb=max_disk_mb,
            read_only=read_only,
            create=create,
        )
        self.store = ReadingsStore(self.file)
        self.devices = DeviceHealth(self.file)
        self.chain = Chain(self.file, self.store)
        self.ledger = DeliveryLedger(self.file, self.chain)
        self.retention = Retention(self.file, self.store, self.chain, self.ledger)
        self.maintenance = MaintenanceLog(self.file)
        self.records = RecordRows(self.file)

    @property
    def path(self) -> Path:
        return self.file.path

    def store_poll(
        self,
        readings: Sequence[Reading],
        *,
        device: str | None = None,
        error: str | None = None,
        time_ms: int | None = None,
        unsynced: bool = False,
    ) -> None:
        """Commit one poll's readings (and the device's health) in one transaction before
        returning. A reading already stored (same channel and time) is not stored again.
        ``unsynced``: the readings were taken while the system clock was not synchronized."""
        self.store_polls([(device, readings, error, time_ms, unsynced)])

    def store_polls(self, polls: Sequence[Poll]) -> None:
        """Commit several polls ``(device, readings, error, time_ms, unsynced)`` in one
        transaction (a group commit: one fsync for all of them with ``durability = "power"``)."""

        def store(conn: sqlite3.Connection) -> None:
            # One insert per run of polls with the same clock flag (one in the common case).
            # Status 01 from the maintenance windows as they stand in this transaction: the
            # labels and the windows' records agree to the millisecond (agent.buffer.maintenance).
            label = self.maintenance.labeller(conn)
            for flag, run in itertools.groupby(polls, key=lambda p: p[4]):
                together = [r for d, rs, _e, _t, _u in run for r in label(d or "", rs)]
                self.store.insert(conn, together, unsynced=flag)
            for device, readings, error, time_ms, _unsynced in polls:
                if device is not None:
                    at = time_ms if time_ms is not None else readings[0].time_ms if readings else 0
                    some_read = any(r.value is not None and not r.error for r in readings)
                    self.devices.record_poll(conn, device, error, at, some_read)

        self.file.write("storing readings", store)

    # The calls the rest of the agent makes, each answered by one part.
    def seal(
        self, make_jws: MakeJws, *, max_readings: int, max_batches: int | None = None
    ) -> list[SealedBatch]:
        """See ``Chain.seal``."""
        return self.chain.seal(make_jws, max_readings=max_readings, max_batches=max_batches)

    def seal_record(self, kind: str, make_jws: MakeRecordJws) -> SealedBatch:
        """See ``Chain.seal_record``."""
        return self.chain.seal_record(kind, make_jws)

    def chain_head(self) -> tuple[int, str | None, int]:
        """See ``Chain.head``."""
        return self.chain.head()

    def pending(
        self,
        transport: str,
        *,
        after: int = 0,
        exclude: Iterable[int] = (),
        limit: int = 20,
        max_bytes: int | None = None,
    ) -> list[SealedBatch]:
        """See ``DeliveryLedger.pending``."""
        return self.ledger.pending(
            transport, after=after, exclude=exclude, limit=limit, max_bytes=max_bytes
        )

    def first_pending_seq(self, transport: str) -> int | None:
        return self.ledger.first_pending_seq(transport)

    def mark_acked(self, transport: str, seqs: Iterable[int], at_ms: int) -> None:
        self.ledger.mark_acked(transport, seqs, at_ms)

    def quarantine(self, transport: str, seq: int, at_ms: int, reason: str) -> None:
        self.ledger.quarantine(transport, seq, at_ms, reason)

    def requeue(self, transport: str, seqs: Sequence[int] | None = None) -> list[int]:
        return self.ledger.requeue(transport, seqs)

    def requeue_marker(self, transport: str) -> tuple[int, list[int]] | None:
        return self.ledger.requeue_marker(transport)

    def prune(
        self, transports: Sequence[str], older_than_ms: int, keep_ms: int | None = None
    ) -> int:
        """See ``Retention.prune``."""
        return self.retention.prune(transports, older_than_ms, keep_ms)

    def readings(self, first_id: int = 0, limit: int = 1_000_000) -> list[ReadingRow]:
        return self.store.readings(first_id, limit)

    def asks(self) -> int:
        """How many requests other processes have written (``agent.buffer.asks``)."""
        with self.file.read() as conn:
            return asks_counter.read(conn)

    def integrity_check(self) -> str:
        return self.file.integrity_check()

    def close(self) -> None:
        self.file.close()
