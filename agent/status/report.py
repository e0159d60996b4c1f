"""``station-agent status``: what is waiting, what was acknowledged, how each device is doing.

Reads the buffer through its own parts opened read-only (``Buffer(path, read_only=True)``: the
same queries the agent uses), so it is safe to run beside the running agent, and never migrates
or changes the file; and the agent's health file (``agent.status.health``). Every figure comes
from a section (``agent.status.sections``), the same ones the station page and ``/metrics`` show.
"""

from __future__ import annotations

import time
from typing import Any
from zoneinfo import ZoneInfo

from agent.buffer import Buffer, DatabaseError
from agent.config.model import Config
from agent.status.health import read_health, running
from agent.status.sections import StationState, gather_all, merged, render_all
from core.errors import StorageError


def station_state(buffer: Buffer, config: Config, health: dict[str, Any] | None) -> StationState:
    """The state ``status`` reads: the buffer, and the health report the agent last wrote."""
    now_ms = int(time.time() * 1000)
    return StationState(buffer, config, health, running(health, now_ms), now_ms)


def gather(config: Config) -> dict[str, Any]:
    """Collect the status figures from the buffer file (read-only) and the health file."""
    path = config.buffer.path
    if not path.exists():
        raise StorageError(f"{path}: no buffer yet (has the agent run with this config?)")
    try:
        buffer = Buffer(path, read_only=True)
        try:
            return merged(gather_all(station_state(buffer, config, read_health(path))))
        finally:
            buffer.close()
    except DatabaseError as exc:
        raise StorageError(f"{path}: cannot read the buffer: {exc}") from None


def render(status: dict[str, Any]) -> str:
    """The status as a technician reads it."""
    return "\n".join(render_all(status, ZoneInfo(status["timezone"])))
