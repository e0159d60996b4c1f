"""The agent process: is it running (``agent.status.health.running``), poll slots it missed, a
buffer that cannot store."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from agent.status.sections.base import StationState


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
