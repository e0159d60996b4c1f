"""The agent process: is it running, poll slots it missed, a buffer that cannot store."""

from __future__ import annotations

import os
from typing import Any
from zoneinfo import ZoneInfo

from agent.status.sections.base import StationState

RUNNING_WITHIN_S = 30  # the agent rewrites its health report every second


def _alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it is alive
    return True


def running(health: dict[str, Any] | None, now_ms: int, within_s: float = RUNNING_WITHIN_S) -> bool:
    """Whether the agent that wrote ``health`` is running: a live process that rewrote its
    report within ``within_s``."""
    if not health:
        return False
    age_s = (now_ms - (health.get("updated_at_ms") or 0)) / 1000
    return _alive(health.get("pid")) and age_s < within_s


class AgentSection:
    name = "agent"

    def gather(self, state: StationState) -> dict[str, Any]:
        """The health report, with ``running`` and ``updated_s_ago``; ``missed_polls``,
        ``storage_error`` and the rest as the agent reported them."""
        health = state.health
        if not health:
            return {"agent": {"running": False}}
        age_s = (state.now_ms - (health.get("updated_at_ms") or 0)) / 1000
        return {"agent": {**health, "running": state.running, "updated_s_ago": round(age_s, 1)}}

    def lines(self, section: dict[str, Any], tz: ZoneInfo) -> list[str]:
        agent = section["agent"]
        if not agent.get("running"):
            return ["  agent: NOT RUNNING"]
        lines = [f"  agent: running (pid {agent['pid']}, reported {agent['updated_s_ago']} s ago)"]
        if agent.get("missed_polls"):
            lines.append(
                f"  MISSED POLLS: {agent['missed_polls']} poll slot(s) could not start on time "
                "(signed as missed_polls records with the reason; not device faults)"
            )
        if agent.get("storage_error"):
            lines.append(
                f"  BUFFER CANNOT STORE: {agent['storage_error']} — {agent['waiting_polls']} "
                f"poll(s) waiting in memory, {agent['dropped_polls']} dropped; free disk space"
            )
        return lines
