"""Health records in the running agent: ``agent.records.health.HealthRecords`` fed with the
figures ``station-agent status`` shows, read the way ``status`` and the page read them (the
buffer opened read-only, the running agent's health report), sealed through
``request_record``."""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from agent import __version__
from agent.buffer import Buffer
from agent.config.health import timing
from agent.config.model import Config
from agent.poll.poller import Poller
from agent.records.health import HealthRecords
from agent.status.config_state import config_state
from agent.status.sections import StationState, gather_all, merged, sections
from core.batch import SealedBatch

_STATES = ("devices", "maintenance")


class _Running(Protocol):
    """The parts of the running agent a health record reads."""

    config: Config
    poller: Poller

    def health(self) -> dict[str, Any]: ...

    def request_record(self, kind: str, body: dict[str, Any]) -> SealedBatch: ...


class HealthFigures:
    """The merged status figures of the running agent (``status --json``), on demand."""

    def __init__(self, agent: _Running) -> None:
        self._agent = agent
        self._buffer: Buffer | None = None
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, Any]:
        """Every section's figures, merged (``status --json``)."""
        return merged(gather_all(self._state()))

    def states(self) -> dict[str, Any]:
        """Only what a change record follows, cheaply, once a second: the ``devices`` and
        ``maintenance`` sections, and each transport's failing state from the agent's report
        (the ``transports`` section's source for it), not its backlog."""
        state = self._state()
        out = merged({s.name: s.gather(state) for s in sections() if s.name in _STATES})
        live = (state.health or {}).get("transports") or {}
        out["transports"] = [
            {"name": name, "failing_since_ms": figures.get("failing_since_ms")}
            for name, figures in live.items()
        ]
        return out

    def _state(self) -> StationState:
        agent = self._agent
        with self._lock:
            if self._buffer is None:
                self._buffer = Buffer(agent.config.buffer.path, read_only=True)
            buffer = self._buffer
        return StationState(buffer, agent.config, agent.health(), True, int(time.time() * 1000))

    def close(self) -> None:
        with self._lock:
            if self._buffer is not None:
                self._buffer.close()
                self._buffer = None


def make(agent: _Running) -> tuple[HealthRecords, HealthFigures]:
    """The health records of ``agent`` and the figures they read (closed at the stop)."""
    figures = HealthFigures(agent)
    records = HealthRecords(
        figures,
        figures.states,
        agent.request_record,
        lambda: timing(agent.config.health),
        lambda: agent.poller.missed_polls,
        lambda: agent.poller.states.version,
        time.monotonic,
        __version__,
        lambda: config_state(agent.config),
    )
    return records, figures
