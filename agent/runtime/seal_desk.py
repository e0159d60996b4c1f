"""Sealing in the daemon: one thread at a time, readings before the record asked for after them.

Whoever seals holds the desk's lock: the seal tick (``seal_and_wake``), a record asked for by any
thread (``request_record``: maintenance, the descriptor) and housekeeping (a key rotation). Each
wakes the senders when it sealed something. The seal tick also seals the poll slots the agent
could not run since the last one (``agent.records.missed_polls``), after the readings stored
before them.

Between two ticks, once a full batch's worth of readings has been stored since the last seal,
the poller's commit nudges the seal thread to seal the full batches (``seal_full``): at a high
rate with a long seal interval (12,500 readings/s, 60 s: 75 batches) sealing them all at the
tick held the interpreter for seconds and the polls fell behind; as they fill, one batch at a
time, it does not (bench/RESULTS.md, issue 33). The batches are cut as the tick would cut them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from agent.poll.poller import Poller
from agent.records.missed_polls import KIND as MISSED
from agent.records.missed_polls import record_bodies
from agent.seal.batch_size import BatchSizer
from agent.seal.sealing import Sealer
from agent.send.sender import Sender
from agent.support.logs import event
from agent.support.ticker import Ticker
from core.batch import SealedBatch
from core.errors import StorageError

log = logging.getLogger("agent")


class SealDesk:
    """Seals the buffer's readings and the records asked for; counts and remembers failures."""

    def __init__(
        self,
        sealer: Sealer,
        sizer: BatchSizer,
        senders: Callable[[], Sequence[Sender]],
        poller: Poller,
    ) -> None:
        self.sealer, self.sizer, self._senders, self.poller = sealer, sizer, senders, poller
        self.lock = threading.Lock()
        self.sealed = 0
        self.error: str | None = None
        self._stored_at_seal = 0  # the poller's readings stored when the last seal began

    def wake(self) -> None:
        for sender in self._senders():
            sender.wake()

    def seal_and_wake(self, final: bool = False) -> int:
        """Seal as ``agent.seal.batch_size`` says (all if ``final``), wake the senders; how
        many batches were sealed."""
        return self._sealing(
            lambda: self._seal_missed() + self.sizer.seal(self.sealer, self._senders(), final=final)
        )

    def stored(self, seal: Ticker | None) -> None:
        """After each commit: once a full batch's worth of readings has been stored since the
        last seal began, nudge the ``seal`` duty (which runs ``seal_full``)."""
        if seal is not None and self.poller.polled - self._stored_at_seal >= self.sizer.cap():
            seal.nudge()

    def seal_full(self) -> int:
        """Seal the full batches waiting (none partly full), wake the senders; how many."""
        return self._sealing(lambda: self.sizer.seal_full(self.sealer))

    def _sealing(self, seal: Callable[[], int]) -> int:
        with self.lock:
            self._stored_at_seal = self.poller.polled
            try:
                batches = seal()
            except StorageError as exc:
                self.error = str(exc)
                event(log, logging.ERROR, "seal_failed", error=str(exc))
                return 0
        self.error = None
        self.sealed += batches
        if batches:
            self.wake()
        return batches

    def _seal_missed(self) -> int:
        """The missed poll slots as records, after the readings stored before them (under the
        lock; how many batches); given back to the poller if the buffer cannot take them."""
        holes = self.poller.take_missed()
        if not holes:
            return 0
        sealed = 0
        try:
            sealed += self.sealer.seal_count()
            for body in record_bodies(holes):
                self.sealer.seal_record(MISSED, body)
                sealed += 1
        except StorageError:
            self.poller.give_back_missed(holes)  # a record sealed twice beats one lost
            raise
        return sealed

    def request_record(self, kind: str, body: dict[str, Any]) -> SealedBatch:
        """Seal a record of ``kind`` (registered in ``core.records``) now; thread-safe.

        Any thread may call it: it takes the lock (so it waits for a seal tick in progress, and
        the sealing thread waits for it), first seals the readings stored before the call (so a
        record follows every reading stored before it was asked for), then seals the record,
        fsynced (synchronous=FULL) before it returns, and wakes the senders. Raises
        ``core.records.RecordError`` (nothing sealed) if the body does not fit the kind's model,
        ``StorageError`` if the buffer cannot take it (also kept in ``error``)."""
        with self.lock:
            try:
                batches = self.sealer.seal_count()
                record = self.sealer.seal_record(kind, body)
            except StorageError as exc:
                self.error = str(exc)
                event(log, logging.ERROR, "seal_failed", error=str(exc), kind=kind)
                raise
        self.error = None
        self.sealed += batches + 1
        self.wake()
        return record
