"""The one narrow view of a running agent that the station page, its actions and ``/metrics``
read. ``agent.runtime.agent.Agent`` provides it; the web side names only this protocol, so it
sits below the runtime that builds it (the consumer owns the interface).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from agent.buffer import Buffer
from agent.config.model import Config
from agent.poll.poller import Poller
from agent.send.sender import Sender
from agent.transports import PeriodFileTransport
from drivers import Driver, ListeningDriver


class RuntimeView(Protocol):
    """What the page, its actions and the metrics read of the running agent."""

    @property
    def config(self) -> Config: ...

    @property
    def buffer(self) -> Buffer: ...

    @property
    def poller(self) -> Poller: ...

    @property
    def drivers(self) -> Sequence[Driver | ListeningDriver]: ...

    @property
    def senders(self) -> Sequence[Sender]: ...

    @property
    def file_transports(self) -> Sequence[PeriodFileTransport]: ...

    @property
    def sealed(self) -> int:
        """Batches sealed since start."""
        ...

    def health(self) -> dict[str, Any]:
        """What the health file says: start time, storage error, missed polls, transports."""
        ...
