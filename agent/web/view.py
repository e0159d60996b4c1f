"""The one narrow view of a running agent: all that the station page, its actions and
``/metrics`` read (and the health file ``status`` reads is written from the same ``health``).
``agent.runtime.view.AgentView`` provides it; the web side names only this protocol, so it
sits below the runtime that builds it (the consumer owns the interface).

Every figure ``status`` also shows is not here but in the status sections
(``agent.status.sections``), gathered from the buffer and ``health()``; what is here is what
only the running process holds: each device's last poll and the counters since start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.config.model import Config
from core.reading import Reading


@dataclass(frozen=True, slots=True)
class DeviceLive:
    """One configured device as the running agent holds it in memory."""

    name: str
    driver: str
    readings: Sequence[Reading]  # of its last poll (empty: none since start)
    error: str | None  # of its last poll
    time_ms: int | None  # of its last poll (None: none since start)
    read_since_start: int  # readings the device answered
    stored_since_start: int  # readings committed (missed slots' fault readings included)
    raw: dict[str, str] = field(default_factory=dict)  # per channel, the last raw words
    requests: int | None = None  # requests sent (a register-based driver; None: not one)
    request_errors: dict[str, int] = field(default_factory=dict)  # failed requests by kind


@dataclass(frozen=True, slots=True)
class TransportLive:
    """One configured transport's counters since start."""

    name: str
    batches: bool  # it is handed sealed batches (else it builds period files itself)
    send_failures: int  # sends to retry (no acknowledgement)


class RuntimeView(Protocol):
    """What the page, its actions and the metrics read of the running agent."""

    @property
    def config(self) -> Config: ...

    @property
    def sealed(self) -> int:
        """Batches sealed since start."""
        ...

    def health(self) -> dict[str, Any]:
        """The health report: start time, storage error, missed polls, each transport's state.
        The agent writes this very dict to its health file (``agent.status.health``)."""
        ...

    def devices(self) -> list[DeviceLive]:
        """Each configured device, in configuration order."""
        ...

    def transports(self) -> list[TransportLive]:
        """Each configured transport."""
        ...

    def on_poll(self, observe: Callable[[str, float], None]) -> None:
        """Call ``observe(device, seconds)`` after each poll (the poll duration histogram)."""
        ...

    def requeue(self, transport: str, seqs: list[int] | None) -> list[int]:
        """Send ``transport``'s quarantined batches (all, or ``seqs``) again; the seqs put back."""
        ...
