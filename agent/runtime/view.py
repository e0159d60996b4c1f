"""``AgentView``: the running agent seen through ``agent.web.view.RuntimeView``, the one narrow
view the station page, its actions and ``/metrics`` read, and from which the health file is
written (``Agent.write_health``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from agent.buffer import Buffer
from agent.config.model import Config
from agent.poll.poller import Poller
from agent.send.sender import Sender
from agent.transports import PeriodFileTransport
from agent.web.view import DeviceLive, TransportLive
from drivers import Driver, ListeningDriver
from drivers.base import WireCounters


class _Running(Protocol):
    """The parts of ``agent.runtime.agent.Agent`` the view reads (the Agent class itself is
    named only by the process shell and the CLI)."""

    config: Config
    buffer: Buffer
    poller: Poller

    @property
    def drivers(self) -> list[Driver | ListeningDriver]: ...

    @property
    def senders(self) -> list[Sender]: ...

    @property
    def file_transports(self) -> list[PeriodFileTransport]: ...

    @property
    def sealed(self) -> int: ...

    def health(self) -> dict[str, Any]: ...


class AgentView:
    """``RuntimeView`` over one running agent (reads its current parts at each call, so a
    reload that rebuilds them is followed)."""

    def __init__(self, agent: _Running) -> None:
        self._agent = agent

    @property
    def config(self) -> Config:
        return self._agent.config

    @property
    def sealed(self) -> int:
        return self._agent.sealed

    def health(self) -> dict[str, Any]:
        return self._agent.health()

    def devices(self) -> list[DeviceLive]:
        agent = self._agent
        poller = agent.poller
        out = []
        for dcfg, driver in zip(agent.config.devices, agent.drivers, strict=True):
            readings, error, at_ms = poller.last.get(dcfg.name, ([], None, None))
            if isinstance(driver, ListeningDriver):  # packets hold some channels each
                readings = list(poller.latest.get(dcfg.name, {}).values())
            wire = driver if isinstance(driver, WireCounters) else None
            requests, errors = wire.request_counts() if wire else (None, {})
            out.append(
                DeviceLive(
                    dcfg.name,
                    dcfg.driver,
                    list(readings),
                    error,
                    at_ms,
                    poller.read_by_device.get(dcfg.name, 0),
                    poller.stored_by_device.get(dcfg.name, 0),
                    wire.raw_registers() if wire else {},
                    requests,
                    dict(errors),
                )
            )
        return out

    def transports(self) -> list[TransportLive]:
        agent = self._agent
        return [TransportLive(s.name, True, s.failures) for s in agent.senders] + [
            TransportLive(t.name, False, 0) for t in agent.file_transports
        ]

    def on_poll(self, observe: Callable[[str, float], None]) -> None:
        self._agent.poller.on_poll = observe

    def requeue(self, transport: str, seqs: list[int] | None) -> list[int]:
        return self._agent.buffer.requeue(transport, seqs)
