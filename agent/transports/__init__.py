"""Transports carry sealed batches to a destination and report what it said.

A batch transport never writes the buffer. ``submit`` hands it one batch without blocking;
later the transport calls ``on_outcome(seq, outcome)`` exactly once for that submission, from any
thread:

* ``Ack`` — the destination acknowledged it (MQTT: the warehouse's own acknowledgement, or the
  broker's PUBACK with ``ack = "broker"``; HTTPS: 2xx/409);
* ``Reject(reason)`` — the destination refused this batch for good (quarantine it);
* ``Retry(reason)`` — not delivered this time (connection, timeout, 5xx); send it again later.

Adding a transport: one folder ``agent/transports/<type>/`` with the same files as the others
(``config.py``: the section model, a subclass of ``agent.support.sections.TransportSection``
with a literal ``type``; ``transport.py``: the class implementing ``Transport``; ``check.py``:
its ``check`` for ``station-agent check-transports``; ``README.md``; ``sample.toml``; and
``status.py`` when it has a part of its own in ``status``), plus one entry in ``_REGISTRY`` below
(its config model and its class, each as ``"module:Name"``).
A transport whose section says ``delivers = "period_files"`` (TT10 text files) implements
``PeriodFileTransport`` instead: it builds its files from the stored readings in a loop of its
own and keeps its own ledger (TT10 is the one transport that writes buffer.db, its own tables).
Modules are imported on first use, so a station loads only the transports it configures (paho
for MQTT; HTTPS needs only the standard library), and checking a configuration loads their
``config.py`` alone.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from agent.support.sections import TransportSection
from core.registry import LazyRegistry

if TYPE_CHECKING:  # names of the interfaces: checking a configuration loads no outcome class
    from agent.transports.check import Verdict
    from core.batch import SealedBatch
    from core.outcomes import OnOutcome

_REGISTRY: dict[str, tuple[str, str]] = {
    "mqtt": (
        "agent.transports.mqtt.config:MqttTransportConfig",
        "agent.transports.mqtt.transport:MqttTransport",
    ),
    "https": (
        "agent.transports.https.config:HttpsTransportConfig",
        "agent.transports.https.transport:HttpsTransport",
    ),
    "tt10": (
        "agent.transports.tt10.config:Tt10TransportConfig",
        "agent.transports.tt10.transport:Tt10Transport",
    ),
}


class Transport(Protocol):
    """What the sender, the daemon and the health report use of a transport."""

    name: str
    window: int  # how many batches may be in flight at once
    window_bytes: int | None  # how many bytes of batches may be in flight (None: no cap)
    backoff_initial_s: float  # after a Retry, wait this long, doubling up to backoff_max_s
    backoff_max_s: float
    last_error: str | None  # the transport's own diagnosis of why it cannot deliver, if any

    def connected(self) -> bool:
        """False when the transport knows it cannot deliver now (waiting for acks is in vain)."""
        ...

    def start(self, on_outcome: OnOutcome) -> None: ...

    def submit(self, batch: SealedBatch) -> None: ...

    def stop(self, timeout_s: float = 5.0) -> None: ...


class PeriodFileTransport(Protocol):
    """A transport that delivers files rebuilt from stored readings, one per period."""

    name: str
    last_error: str | None
    delivered: int  # files delivered since start

    def start(self) -> None: ...

    def stop(self, timeout_s: float = 5.0) -> None: ...

    def oldest_needed_ms(self) -> int | None:
        """The earliest reading time an undelivered file still needs (a retention consumer)."""
        ...

    def forget_delivered_before(self, cutoff_ms: int) -> None:
        """Drop its own records of files delivered before the retention cutoff."""
        ...


class TransportFactory(Protocol):
    def __call__(self, config: Any, *args: Any) -> Transport | PeriodFileTransport: ...


TRANSPORTS: LazyRegistry[type[TransportSection], TransportFactory] = LazyRegistry(_REGISTRY)
"""Transport type -> config model (``.config``), transport class (``.implementation``), each
imported when first asked for."""


class TransportCheck(Protocol):
    """``check(section, station, timeout)`` in ``agent/transports/<type>/check.py``."""

    def __call__(self, config: Any, station: str, timeout: float) -> Verdict: ...


def check_of(type_: str) -> TransportCheck:
    """The ``station-agent check-transports`` check of a transport type: the ``check`` function
    of ``check.py`` in its folder (every transport folder has one; imported when asked for)."""
    folder = TRANSPORTS.module_of(type_).rpartition(".")[0]
    return cast(TransportCheck, importlib.import_module(f"{folder}.check").check)


def make_transport(config: TransportSection, station: str) -> Transport:
    """Build the transport for one validated ``[[transports]]`` section that takes batches."""
    return cast(Transport, TRANSPORTS.implementation(config.type)(config, station))


def make_period_file_transport(
    config: TransportSection, buffer_path: Path, clock: Any
) -> PeriodFileTransport:
    """Build the loop of one ``delivers = "period_files"`` section."""
    factory = TRANSPORTS.implementation(config.type)
    return cast(PeriodFileTransport, factory(config, buffer_path, clock))
