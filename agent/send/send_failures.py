"""What a sender knows of its transport's failures, and the lines it logs about them.

After a ``Retry`` no batch is offered again before a capped exponential backoff with jitter has
passed; the transport counts as failing (``since_ms``, ``last_error``: what ``status`` shows)
until acknowledgements come again. One line when a run of failures begins, hourly reminders,
one when it ends (``agent.support.logs.Repeats``).

A batch answered "too early" (HTTP 425; over MQTT an acknowledgement saying ``retry``) overtook a
record it names, e.g. a rotation record or a descriptor still in flight. It is sent again after
the initial backoff, logged once at INFO (``send_too_early``) when batches start overtaking,
and is no failure, unless the warehouse keeps saying so of one batch for
``TOO_EARLY_PATIENCE_S``: the record it waits for is not coming by itself (docs/protocol.md).
"""

from __future__ import annotations

import logging
import random
import time

from agent.support.logs import Repeats, event
from agent.transports import Transport
from core.outcomes import Retry

log = logging.getLogger("agent.sender")
# A batch answered "too early" for this long is a failure: batches overtaking their record are
# stored seconds later.
TOO_EARLY_PATIENCE_S = 60.0


class SendFailures:
    """The backoff and the failing state of one sender (used by its loop's thread only)."""

    def __init__(self, transport: Transport) -> None:
        self.transport, self.name = transport, transport.name
        self.backoff_s = 0.0
        self.retry_at = 0.0  # monotonic: no batch is offered before (0: no backoff running)
        self.count = 0  # Retry outcomes counted as failures since start (metrics)
        self.last_error: str | None = None
        self.since_ms: int | None = None  # wall clock: when the current run of failures began
        self._too_early: dict[int, float] = {}  # seq -> first answered "too early" (monotonic)
        self._repeats = Repeats(log)

    def backing_off(self) -> bool:
        """Is a backoff running (no batch may be offered yet)? Clears one that has passed."""
        if self.retry_at and time.monotonic() < self.retry_at:
            return True
        self.retry_at = 0.0
        return False

    def retry(self, seq: int, outcome: Retry) -> None:
        """``seq`` was not delivered: back off; a failure unless it came too early (above)."""
        if outcome.too_early and self._wait_for_earlier(seq, outcome.reason):
            return
        initial, cap = self.transport.backoff_initial_s, self.transport.backoff_max_s
        self.backoff_s = min(cap, max(initial, self.backoff_s * 2))
        delay = self.backoff_s * random.uniform(0.5, 1.0)  # full jitter, lower-bounded
        self.retry_at = time.monotonic() + delay
        self.last_error = outcome.reason
        if self.since_ms is None:  # wall time: status compares it with its own clock
            self.since_ms = int(time.time() * 1000)
        self.count += 1
        self._repeats.failed(  # one line when it starts, hourly reminders, one when it ends
            self.name,
            logging.WARNING,
            "send_failed",
            outcome.reason,
            transport=self.name,
            seq=seq,
            retry_in_s=round(delay, 2),
        )

    def delivered(self) -> None:
        """Acknowledgements came: the transport works again (one line if it was failing)."""
        self.backoff_s = 0.0
        self.last_error = None
        self.since_ms = None
        self._repeats.ok(self.name, "send_recovered", transport=self.name)

    def done(self, seq: int) -> None:
        """``seq`` is acknowledged or quarantined: nothing to wait for any more."""
        self._too_early.pop(seq, None)

    def _wait_for_earlier(self, seq: int, reason: str) -> bool:
        """Send ``seq`` again after the initial backoff, not as a failure (True), unless it has
        been "too early" for ``TOO_EARLY_PATIENCE_S`` (False: it is a failure)."""
        now = time.monotonic()
        if not self._too_early:
            event(log, logging.INFO, "send_too_early", transport=self.name, seq=seq, reason=reason)
        if now - self._too_early.setdefault(seq, now) >= TOO_EARLY_PATIENCE_S:
            return False
        delay = self.transport.backoff_initial_s * random.uniform(0.5, 1.0)
        self.retry_at = max(self.retry_at, now + delay)
        return True
