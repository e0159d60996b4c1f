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
from agent.config.model import Config
from agent.poll.poller import Poller
from agent.records.health import HealthRecords
from agent.status.config_state import config_state
from agent.status.sections import StationState, gather_all, merged
from core.batch import SealedBatch


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
        agent = self._agent
        with self._lock:
            if self._buffer is None:
                self._buffer = Buffer(agent.config.buffer.path, read_only=True)
            now_ms = int(time.time() * 1000)
            state = StationState(self._buffer, agent.config, agent.health(), True, now_ms)
            return merged(gather_all(state))

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
        agent.request_record,
        lambda: (agent.config.health.interval_s, agent.config.health.change_gap_s),
        lambda: agent.poller.missed_polls,
        lambda: agent.poller.commits,
        time.monotonic,
        __version__,
        lambda: config_state(agent.config),
    )
    return records, figures
