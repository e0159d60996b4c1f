"""Clock sync: is the system clock synchronized, as the kernel (and ``timedatectl``) says."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from agent.status.sections.base import StationState
from agent.support.clock_sync import MAX_ERROR_US, max_error_us


class ClockSection:
    name = "clock"

    def gather(self, state: StationState) -> dict[str, Any]:
        """``synchronized`` (None: the kernel cannot be asked) and ``max_error_s``."""
        error_us = max_error_us()
        return {
            "clock": {
                "synchronized": None if error_us is None else error_us < MAX_ERROR_US,
                "max_error_s": None if error_us is None else round(error_us / 1e6, 3),
            }
        }

    def lines(self, section: dict[str, Any], tz: ZoneInfo) -> list[str]:
        clock = section["clock"]
        if clock["synchronized"]:
            return [f"  clock: synchronized (max error {clock['max_error_s']} s)"]
        if clock["synchronized"] is False:
            return [
                "  CLOCK NOT SYNCHRONIZED: readings are stamped by a clock no time service "
                "disciplines; check chrony or systemd-timesyncd (timedatectl)"
            ]
        return []
