"""The sender: one per transport, it feeds pending batches and records outcomes.

It keeps at most ``transport.window`` batches in flight, marks a batch acknowledged in the buffer
only when the transport reports ``Ack``, quarantines on ``Reject`` and, on ``Retry``, backs off
before offering pending batches again (``agent.send.send_failures``: the backoff, the failing state,
and batches answered "too early", which are no failure while it does not last).

**New data is not starved by a backlog.** One slot of the window is the *fresh slot*: it carries
the oldest owed batch among those sealed in the last ``FRESH_S`` seconds, one at a time. The
other slots drain the backlog oldest first (and, with no backlog, carry fresh batches too).
After an outage, a batch sealed during the drain therefore waits for at most the fresh batches
sealed before it, never for the backlog. With a window of 1 the one slot takes a fresh batch
first when there is one. Under a byte cap (``window_bytes``) the fresh slot takes the first
room the acknowledgements make. A fresh batch still unanswered after ``FRESH_OVERDUE_S`` (a
lost acknowledgement) stays in flight but counts among the backlog's places, and the fresh slot
takes the next fresh batch. docs/protocol.md, "Order of delivery".
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from agent.buffer import Buffer
from agent.send.done_seqs import DoneSeqs, ranges
from agent.send.send_failures import SendFailures
from agent.support.clock import Clock
from agent.support.logs import event
from agent.transports import Transport
from core.batch import SealedBatch
from core.errors import StorageError
from core.outcomes import Ack, Outcome, Reject, Retry

log = logging.getLogger("agent.sender")
# With nothing to wake it (a seal, an outcome, a backoff's end, a fresh batch overdue, a stop),
# the loop looks again this often: for a transport back online with nothing in flight. Every
# wake-up of an idle thread costs ~0.2 ms of CPU (bench/RESULTS.md, issue 17).
IDLE_S = 5.0
FRESH_S = 120.0  # a batch sealed this recently rides in the fresh slot (well inside 300 s)
FRESH_OVERDUE_S = 5.0  # a fresh batch unanswered this long leaves the fresh slot to the next


class Sender:
    """Moves one transport's backlog out of the buffer."""

    def __init__(
        self,
        buffer: Buffer,
        transport: Transport,
        clock: Clock,
    ) -> None:
        self.buffer, self.transport, self.clock = buffer, transport, clock
        self.name = transport.name
        self._wake = threading.Event()
        self._stop_deadline = 0.0
        self._done_seqs = DoneSeqs(buffer, self.name)
        self._outcomes: deque[tuple[int, Outcome]] = deque()
        self._in_flight: dict[int, int] = {}  # seq -> bytes
        self._fresh: int | None = None  # the seq in the fresh slot, if any
        self._fresh_at = 0.0  # when it went into the fresh slot (monotonic)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.acked = 0
        self.failing = SendFailures(transport)
        self.beat = time.monotonic()  # the loop's last turn: the daemon's watchdog reads it
        self._idle = False  # waiting for work (not stuck, however long since the last turn)
        self.died: str | None = None  # why the loop ended, if it ended by an error

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._done_seqs.start()
        self.transport.start(self._on_outcome)
        self._thread = threading.Thread(target=self._run, name=f"sender-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Send what is pending for up to ``timeout_s`` (not waiting out a backoff); whatever
        is not acknowledged by then stays queued on disk for the next start."""
        deadline = time.monotonic() + timeout_s
        self._stop_deadline = deadline
        self._stopping = True
        self._wake.set()
        if self._thread:
            self._thread.join(timeout_s + 1.0)
        self.transport.stop(max(0.1, deadline - time.monotonic()))
        try:
            self._drain_outcomes()  # acks that raced the shutdown still count
        except StorageError as exc:  # not recorded: those batches are re-sent at the next start
            event(log, logging.ERROR, "sender_storage_error", transport=self.name, error=str(exc))

    def wake(self) -> None:
        """New batches were sealed: look for work now."""
        self._wake.set()

    def progress(self) -> float:
        """When the loop last made progress (monotonic): now while it waits for work."""
        return time.monotonic() if self._idle else self.beat

    @property
    def last_error(self) -> str | None:
        """Why the last send failed, while the transport is failing (None: it is not)."""
        return self.failing.last_error

    @property
    def failing_since_ms(self) -> int | None:
        """Since when (wall clock, ms) the transport has been failing (None: it is not)."""
        return self.failing.since_ms

    @property
    def failures(self) -> int:
        """Sends that failed since start (metrics)."""
        return self.failing.count

    def in_flight(self) -> int:
        return len(self._in_flight)

    def alive(self) -> bool:
        """The loop is running (or not started yet, or stopped on request)."""
        return self._thread is None or self._thread.is_alive() or self._stopping

    # --- the loop (only this thread touches the in-flight state) ----------------------------
    def _on_outcome(self, seq: int, outcome: Outcome) -> None:
        # Called from transport threads, possibly while they hold their own locks: never block.
        self._outcomes.append((seq, outcome))
        self._wake.set()

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # the daemon notices the dead thread and exits non-zero
            self.died = f"{type(exc).__name__}: {exc}"
            raise

    def _loop(self) -> None:
        while True:
            self.beat = now = time.monotonic()
            wait = IDLE_S
            for due in (self._done_seqs.requeue_check_at, self._fresh_overdue_at()):
                if due > now:  # one already past is looked at by the turn that follows
                    wait = min(wait, due - now)
            if self.failing.retry_at:
                wait = max(0.0, min(wait, self.failing.retry_at - now))
            self._idle = True
            self._wake.wait(wait)
            self._idle = False
            self._wake.clear()
            try:
                self._drain_outcomes()
                if self._stopping:
                    # Flush what is pending within the grace period, unless in backoff.
                    if time.monotonic() >= self._stop_deadline or not self._reachable():
                        return
                    if not self._in_flight:
                        self._fill_window()
                        if not self._in_flight:
                            return
                    continue
                self._done_seqs.pick_up_requeued()
                self._fill_window()
            except StorageError as exc:
                event(
                    log, logging.ERROR, "sender_storage_error", transport=self.name, error=str(exc)
                )
                time.sleep(1.0)

    def _fresh_overdue_at(self) -> float:
        return self._fresh_at + FRESH_OVERDUE_S if self._fresh is not None else 0.0

    def _reachable(self) -> bool:
        """False when the transport knows it is offline: waiting for acks would be in vain."""
        return self.transport.connected()

    def delivering(self) -> bool:
        """False while the last attempt failed (Retry) or the transport knows it is offline."""
        return self.failing.since_ms is None and self.transport.connected()

    def _byte_budget(self) -> int | None:
        """Bytes that may still go in flight (None: no byte cap). The cap keeps memory flat
        however large the backlog and the batches are."""
        cap = self.transport.window_bytes
        if cap is None:
            return None
        return max(0, cap - sum(self._in_flight.values()))

    def _submit(self, batch: SealedBatch) -> None:
        self._in_flight[batch.seq] = len(batch.jws)
        self.transport.submit(batch)

    def _fill_window(self) -> None:
        if self.failing.backing_off():
            return
        window = self.transport.window
        if len(self._in_flight) >= window or (self._in_flight and self._byte_budget() == 0):
            return
        if self._fresh is not None and time.monotonic() - self._fresh_at > FRESH_OVERDUE_S:
            self._fresh = None  # its answer is late: it waits among the backlog's places now
        if self._fresh is None:  # it goes first: it takes the first room acknowledgements make
            fresh = self.buffer.ledger.oldest_fresh(
                self.name,
                sealed_since_ms=self.clock.now_ms() - int(FRESH_S * 1000),
                exclude=self._in_flight.keys() | self._done_seqs.above,
            )
            if fresh is not None:
                self._fresh, self._fresh_at = fresh.seq, time.monotonic()
                self._submit(fresh)
        backlog_in_flight = len(self._in_flight) - (self._fresh is not None)
        free = min(window - len(self._in_flight), max(1, window - 1) - backlog_in_flight)
        if free <= 0 or (self._in_flight and self._byte_budget() == 0):
            return
        batches = self.buffer.pending(
            self.name,
            after=self._done_seqs.floor,
            exclude=self._in_flight.keys() | self._done_seqs.above,
            max_bytes=self._byte_budget(),
            limit=free,
        )
        for batch in batches:
            self._submit(batch)

    def _release(self, seq: int) -> None:
        self._in_flight.pop(seq, None)
        if seq == self._fresh:
            self._fresh = None

    def _drain_outcomes(self) -> None:
        if not self._outcomes:
            return
        acked: list[int] = []
        while self._outcomes:
            seq, outcome = self._outcomes.popleft()
            if seq not in self._in_flight:
                continue
            if isinstance(outcome, Ack):
                acked.append(seq)
            elif isinstance(outcome, Reject):
                try:
                    self.buffer.quarantine(self.name, seq, self.clock.now_ms(), outcome.reason)
                except StorageError:
                    self._outcomes.appendleft((seq, outcome))
                    raise
                self._release(seq)
                self._done(seq)
                event(
                    log,
                    logging.ERROR,
                    "batch_quarantined",
                    transport=self.name,
                    seq=seq,
                    reason=outcome.reason,
                )
            elif isinstance(outcome, Retry):
                self._release(seq)
                self.failing.retry(seq, outcome)
        if acked:
            try:
                self.buffer.mark_acked(self.name, acked, self.clock.now_ms())
            except StorageError:
                # Keep the acks to record them on the next pass; the batches stay in flight.
                self._outcomes.extendleft((seq, Ack()) for seq in reversed(acked))
                raise
            for seq in acked:
                self._release(seq)
                self._done(seq)
            self.acked += len(acked)
            self.failing.delivered()
            event(log, logging.INFO, "batches_acked", transport=self.name, seqs=ranges(acked))

    def _done(self, seq: int) -> None:
        self.failing.done(seq)
        self._done_seqs.done(seq)
