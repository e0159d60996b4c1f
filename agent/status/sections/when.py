"""How a time reads in ``status``: the station's local time, then UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo


def when(ms: int | None, tz: ZoneInfo) -> str:
    """A time as the technician on site reads it: the station's local time, then UTC."""
    if ms is None:
        return "never"
    utc = datetime.fromtimestamp(ms / 1000, tz=UTC)
    local = utc.astimezone(tz)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()} ({utc:%H:%M:%S} UTC)"
