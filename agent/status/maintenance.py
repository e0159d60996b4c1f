"""The maintenance section of ``status`` and of the station page: windows lasting now, and
those ended in the last 24 h (``station-agent maintenance``), each with its one-line description.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from agent.buffer import Buffer
from agent.buffer.maintenance import Window

RECENT_MS = 86_400_000  # list and status show windows that ended within a day


def _when(ms: int | None, tz: ZoneInfo) -> str:
    if ms is None:
        return "-"
    local = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(tz)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


def describe(window: Window, tz: ZoneInfo, now_ms: int) -> str:
    """One window as a line: device, channels, until, technician, reason."""
    channels = ",".join(window.channels) if window.channels else "all channels"
    who = f"by {window.technician}" if window.technician else "by the analyzer itself"
    if window.active(now_ms):
        until = f"until {_when(window.until_ms, tz)}" if window.until_ms else "calibrating"
    else:
        how = {"stop": "stopped", "expire": "expired", "end": "ended"}[window.event_at_end()]
        until = f"{how} {_when(window.end_ms, tz)}"
        if (
            window.stopped_by
            and window.event_at_end() == "stop"
            and (window.stopped_by != window.technician)
        ):
            until += f" by {window.stopped_by}"
    reason = f" — {window.reason}" if window.reason else ""
    return f"{window.device} [{channels}] {until}, {who}{reason} (window {window.id})"


def status_section(buffer: Buffer, tz: ZoneInfo, now_ms: int | None = None) -> dict:
    """What ``status`` shows: windows lasting now, and those ended in the last 24 h."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    windows = buffer.maintenance.current(now, now - RECENT_MS)

    def entry(w: Window) -> dict:
        active = w.active(now)
        return {
            "window": w.id,
            "source": w.source,
            "device": w.device,
            "channels": list(w.channels) if w.channels else None,
            "technician": w.technician,
            "reason": w.reason,
            "from_ms": w.start_ms,
            "until_ms": w.until_ms,
            "ended_ms": None if active else w.end_ms,
            "ended_how": None if active else w.event_at_end(),
            "stopped_by": w.stopped_by,
            "line": describe(w, tz, now),
        }

    return {
        "active": [entry(w) for w in windows if w.active(now)],
        "recently_ended": [entry(w) for w in windows if not w.active(now)],
    }


def status_lines(section: dict) -> list[str]:
    """The ``maintenance:`` part of ``status`` as text."""
    if not section["active"] and not section["recently_ended"]:
        return []
    lines = ["maintenance:"]
    lines += [f"  IN MAINTENANCE (status 01): {e['line']}" for e in section["active"]]
    lines += [f"  ended: {e['line']}" for e in section["recently_ended"]]
    return lines
