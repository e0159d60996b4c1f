"""Maintenance windows lasting now and ended in the last 24 h (``agent.status.maintenance``)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from agent.status.maintenance import status_lines, status_section
from agent.status.sections.base import StationState


class MaintenanceSection:
    name = "maintenance"

    def gather(self, state: StationState) -> dict[str, Any]:
        return {"maintenance": status_section(state.buffer, state.tz, state.now_ms)}

    def lines(self, section: dict[str, Any], tz: ZoneInfo) -> list[str]:
        return status_lines(section["maintenance"])
