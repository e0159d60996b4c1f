"""What a destination said about one submitted batch.

* ``Ack`` — the destination acknowledged it (MQTT PUBACK, HTTP 2xx/409);
* ``Reject(reason)`` — the destination refused this batch for good (quarantine it);
* ``Retry(reason)`` — not delivered this time (connection, timeout, 5xx); send it again later.
  ``Retry(reason, too_early=True)``: the destination holds the batch back until a record it
  names has arrived (HTTP 425; over MQTT an acknowledgement saying ``retry``): batches overtaking
  one another, not a failure while it does not last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Ack:
    """The destination has the batch."""


@dataclass(frozen=True, slots=True)
class Reject:
    """The destination refused the batch for good."""

    reason: str


@dataclass(frozen=True, slots=True)
class Retry:
    """Not delivered this time; send again later (``too_early``: the destination waits for an
    earlier record first)."""

    reason: str
    too_early: bool = False


Outcome = Ack | Reject | Retry
OnOutcome = Callable[[int, Outcome], None]
