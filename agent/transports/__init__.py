"""Transports carry sealed batches to a destination and report what it said.

A transport never touches the buffer. ``submit`` hands it one batch without blocking; later the
transport calls ``on_outcome(seq, outcome)`` exactly once for that submission, from any thread:

* ``Ack`` — the destination acknowledged it (MQTT PUBACK, HTTP 2xx/409);
* ``Reject(reason)`` — the destination refused this batch for good (quarantine it);
* ``Retry(reason)`` — not delivered this time (connection, timeout, 5xx); send it again later.
"""

from __future__ import annotations

from typing import Protocol

from core.batch import SealedBatch
from core.outcomes import OnOutcome


class Transport(Protocol):
    name: str
    window: int  # how many batches may be in flight at once

    def start(self, on_outcome: OnOutcome) -> None: ...

    def submit(self, batch: SealedBatch) -> None: ...

    def stop(self, timeout_s: float = 5.0) -> None: ...


def make_transport(config, station: str) -> Transport:
    """Build the transport for one validated ``[[transports]]`` section."""
    if config.type == "mqtt":
        from agent.transports.mqtt import MqttTransport

        return MqttTransport(config, station)
    from agent.transports.https import HttpsTransport

    return HttpsTransport(config, station)
