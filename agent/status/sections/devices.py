"""Each device: ``ok``, ``FAULT`` (the last poll read nothing), ``partly failing: A, B`` (the
last poll read some channels, not A and B) or ``never polled``; its last good reading, last
error, polls and faults, all from the buffer's device table (written with each poll)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from agent.buffer import Buffer, DeviceState
from agent.status.sections.base import StationState
from agent.status.sections.when import when


def device_state(buffer: Buffer, d: DeviceState) -> dict[str, Any]:
    """``state`` in the words above, and ``failing_channels``: the channels whose reading in
    the last poll is a fault."""
    failing: list[str] = []
    if d.last_error_ms is not None and (d.failing or d.partly_failing):
        failing = buffer.devices.failing_channels(d.name, d.last_error_ms)
    if not d.polls:
        state = "never polled"
    elif d.failing:
        state = "FAULT"
    elif d.partly_failing:
        state = "partly failing" + (f": {', '.join(failing)}" if failing else "")
    else:
        state = "ok"
    return {"state": state, "up": state == "ok", "failing_channels": failing}


class DevicesSection:
    name = "devices"

    def gather(self, state: StationState) -> dict[str, Any]:
        buffer, tz = state.buffer, state.tz
        health = state.health or {}
        not_started = (health.get("devices_not_started") or {}) if state.running else {}
        known = [d.name for d in state.config.devices]
        by_name = buffer.devices.all()
        out = []
        for name in known + sorted(set(by_name) - set(known)):
            d = by_name.get(name) or DeviceState(name, None, None, None, 0, 0)
            out.append(
                {
                    "name": name,
                    "configured": name in known,  # else: only in the buffer, no longer polled
                    **device_state(buffer, d),
                    "last_good": when(d.last_good_ms, tz),
                    "last_good_ms": d.last_good_ms,
                    "last_error": d.last_error,
                    "last_error_at": when(d.last_error_ms, tz),
                    "last_error_at_ms": d.last_error_ms,
                    "polls": d.polls,
                    "faults": d.faults,
                    "not_listening": not_started.get(name),
                }
            )
        return {"devices": out}

    def lines(self, section: dict[str, Any], tz: ZoneInfo) -> list[str]:
        lines = ["devices:"]
        for d in section["devices"]:
            lines.append(
                f"  {d['name']}: {d['state']}; last good reading {d['last_good']}; "
                f"polls {d['polls']}, faults {d['faults']}"
            )
            if d["not_listening"]:
                lines.append(f"    NOT LISTENING (retried): {d['not_listening']}")
            if d["last_error"]:
                lines.append(f"    last error ({d['last_error_at']}): {d['last_error']}")
        return lines
