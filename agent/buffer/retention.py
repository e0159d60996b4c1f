"""Retention: delete the oldest batches and their readings once nobody needs them.

``prune(transports, older_than_ms)`` deletes a prefix of the chain (batches 1..N, their
readings and delivery rows) in one transaction. N is the largest seq such that every batch up to
it is:

* acknowledged by every transport in ``transports`` (owed or quarantined anywhere: kept);
* sealed before ``older_than_ms``, and acknowledged (by each) before it: a batch delivered late,
  after a long outage, is kept the retention period from its delivery;
* below the newest batch, which carries the chain head the next batch links to;
* holding no reading a registered consumer still needs (below).

It is always a prefix, so a clock that went backwards cannot make pruning skip ahead; readings
not yet sealed are never pruned.

With ``keep_ms`` (the retention period; the agent always gives it) the station's own clock
cannot fool it either:

* no reading taken within ``keep_ms`` of the newest reading's time is pruned;
* a batch is old enough only once ``keep_ms`` of *observed* time followed it: the sum of the
  gaps between the sealing times of the batches after it, each gap counted between 0 (a clock
  that went back) and ``MAX_GAP_MS`` (a clock that jumped forward, or an agent stopped for a
  while). A forward jump larger than the retention period therefore prunes nothing early; an
  outage only makes data stay longer.

Consumers that read by time (a transport building files per 5-minute period from
``ReadingsStore.readings_between``) register themselves with ``register(consumer)``: a
consumer has a ``name`` and ``oldest_needed_ms()``, the earliest reading time it has not yet
delivered (or still wants kept), or None when it needs nothing. ``prune`` asks each at every run
and keeps every batch holding a reading taken at or after that time, and all batches after it.
Where a consumer records its progress is its own business (a table of its own, or a file); it
only has to answer truthfully, and from a state that survives a restart.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from agent.buffer.chain import Chain
from agent.buffer.db import BufferFile
from agent.buffer.ledger import DeliveryLedger
from agent.buffer.readings import ReadingsStore

MAX_GAP_MS = 3_600_000  # batches are sealed every few minutes at most: a longer gap is not age


@dataclass(frozen=True)
class Hold:
    """A transport holding pruning back: its first batch not acknowledged."""

    transport: str
    seq: int
    sealed_at_ms: int
    quarantined_at_ms: int | None  # None: owed (never acknowledged), not refused

    def way_out(self) -> str:
        """What the operator does about it (docs/operations.md)."""
        if self.quarantined_at_ms is not None:
            return (
                f"fix what the warehouse refused, then: station-agent requeue --config FILE "
                f"--transport {self.transport}"
            )
        return (
            f"make {self.transport} deliver again, or, if it is decommissioned, remove it from "
            "the configuration (its acknowledgements then stop holding pruning back)"
        )


class ReadingsConsumer(Protocol):
    """Something that reads readings by time and must be asked before they are pruned."""

    name: str

    def oldest_needed_ms(self) -> int | None: ...


class Retention:
    """Prunes what every transport and every registered consumer is done with."""

    def __init__(
        self, file: BufferFile, store: ReadingsStore, chain: Chain, ledger: DeliveryLedger
    ) -> None:
        self.file, self.store, self.chain, self.ledger = file, store, chain, ledger
        self.consumers: list[ReadingsConsumer] = []

    def register(self, consumer: ReadingsConsumer) -> None:
        """Ask ``consumer`` before every prune from now on."""
        self.consumers.append(consumer)

    def unregister(self, consumer: ReadingsConsumer) -> None:
        """Stop asking ``consumer`` (a transport a reload removed)."""
        if consumer in self.consumers:
            self.consumers.remove(consumer)

    def prune(
        self, transports: Sequence[str], older_than_ms: int, keep_ms: int | None = None
    ) -> int:
        """Delete the prefix of the chain described in the module docstring; returns the
        number of readings deleted."""
        if not transports and not self.consumers:
            return 0
        needs = {c.name: c.oldest_needed_ms() for c in self.consumers}  # outside the lock

        def prune(conn: sqlite3.Connection) -> int:
            floor = self._floor(conn, transports, older_than_ms, needs)
            if keep_ms is not None:
                floor = min(floor, self._aged_floor(conn, keep_ms))
            last = self.chain.last_upto(conn, floor) if floor > 0 else None
            if last is None:
                return 0
            upto_seq, upto_id = last
            # The reading the head sealed last stays: SQLite numbers a new reading max(id) + 1,
            # and with records (no readings) at the head, deleting it could restart ids below
            # the head's last_id, where sealing would never find them.
            head_last_id = self.chain.last_sealed_id(conn)
            deleted = self.store.delete_upto(conn, min(upto_id, head_last_id - 1))
            self.chain.delete_upto(conn, upto_seq)
            self.ledger.delete_upto(conn, upto_seq)
            return deleted

        return self.file.write("pruning old readings", prune)

    def _floor(
        self,
        conn: sqlite3.Connection,
        transports: Sequence[str],
        older_than_ms: int,
        needs: dict[str, int | None],
    ) -> int:
        """The highest seq that may go."""
        head = self.chain.head()[0]  # same connection, same transaction (re-entrant lock)
        floor = head - 1
        for name in transports:
            first_unacked = self.ledger.first_unacked_seq(conn, name)
            if first_unacked is not None:
                floor = min(floor, first_unacked - 1)
        # Seq order is not time order (the clock may go backwards): the first batch too young
        # by its sealing or by an acknowledgement ends the prefix.
        for too_young in (
            self.chain.first_sealed_since(conn, floor, older_than_ms),
            self.ledger.first_acked_since(conn, transports, floor, older_than_ms),
        ):
            if too_young is not None:
                floor = min(floor, too_young - 1)
        for since_ms in needs.values():
            if since_ms is None:
                continue
            first_id = self.store.first_id_since(conn, since_ms)
            seq = None if first_id is None else self.chain.seq_holding(conn, first_id)
            if seq is not None:
                floor = min(floor, seq - 1)
        return floor

    def holds(self, transports: Sequence[str]) -> list[Hold]:
        """Per transport, the first batch it has not acknowledged (what pruning stops at)."""
        with self.file.read() as conn:
            found = [(name, self.ledger.first_unacked(conn, name)) for name in transports]
        return [Hold(name, *first) for name, first in found if first is not None]

    def _aged_floor(self, conn: sqlite3.Connection, keep_ms: int) -> int:
        """The highest seq old enough by the station's own timeline (module docstring)."""
        newest = self.store.newest_time(conn)
        floor = self.chain.last_aged(conn, keep_ms, MAX_GAP_MS) or 0
        if newest is not None:
            first_id = self.store.first_id_since(conn, newest - keep_ms)
            seq = None if first_id is None else self.chain.seq_holding(conn, first_id)
            if seq is not None:
                floor = min(floor, seq - 1)
        return floor
