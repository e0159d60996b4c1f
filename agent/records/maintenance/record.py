"""Maintenance and calibration records: what a technician or the analyzer said, for the chain.

A record of kind ``maintenance`` tells the warehouse that a window began or ended (docs/protocol.md,
"Record kind maintenance"). ``source = "technician"``: ``station-agent maintenance start`` /
``stop``, or the window's time ran out (``event`` ``start``, ``stop``, ``expire``).
``source = "analyzer"``: the analyzer's own status register switched a channel to calibrating
(``01``) or back (``event`` ``start``, ``end``). Start and end of one window share ``window``.

Here: the record body's builder from a stored window (the body's model, the data contract
shared with the warehouse, is ``core.record_kinds.maintenance``), and the checks of what a
technician types (duration, names, free text), all bounded.
"""

from __future__ import annotations

import re

from agent.buffer.maintenance import Window
from core.errors import AgentError
from core.reading import rfc3339_ms
from core.record_kinds.maintenance import (
    MAX_CHANNELS,
    MAX_REASON,
    MAX_TECHNICIAN,
    Event,
    MaintenanceRecord,
)

__all__ = ["MAX_CHANNELS", "MAX_REASON", "MAX_TECHNICIAN", "MaintenanceRecord", "record_body"]

KIND = "maintenance"
MAX_DURATION_S = 7 * 86_400  # a longer job is several windows: the station must not stay 01
MAX_OPEN_WINDOWS = 20  # technician windows open at once on one device
_DURATION = re.compile(r"(\d{1,7})([dhms])")
_UNIT_S = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


def _time(ms: int | None) -> str | None:
    return None if ms is None else rfc3339_ms(ms)


def record_body(window: Window, event: Event) -> dict:
    """The record body for ``event`` of a stored window (validated by ``MaintenanceRecord``)."""
    ended = event != "start"
    body = {
        "event": event,
        "source": window.source,
        "window": window.id,
        "device": window.device,
        "channels": None if window.channels is None else list(window.channels),
        "technician": window.technician,
        "reason": window.reason,
        "from": rfc3339_ms(window.start_ms),
        "until": _time(window.until_ms),
        "stopped": _time(window.end_ms) if ended else None,
        "stopped_by": window.stopped_by if event == "stop" else None,
    }
    return MaintenanceRecord.model_validate(body).model_dump()


def parse_duration(text: str) -> int:
    """``30m``, ``2h``, ``1h30m``, ``90s``, ``1d`` -> seconds (1 s to 7 days)."""
    text = text.strip().lower()
    parts = _DURATION.findall(text)
    if not text or len(text) > 32 or "".join(n + u for n, u in parts) != text:
        raise AgentError(f"--for {text!r}: expected a duration such as 30m, 2h, 1h30m, 90s or 1d")
    seconds = sum(int(n) * _UNIT_S[u] for n, u in parts)
    if not 1 <= seconds <= MAX_DURATION_S:
        raise AgentError(
            f"--for {text!r}: a window lasts from 1 s to 7 days (start another one to go on)"
        )
    return seconds


def check_text(option: str, value: str, max_len: int) -> str:
    """A name or reason as typed: trimmed, not empty, printable, at most ``max_len``."""
    value = value.strip()
    if not value:
        raise AgentError(f"{option}: must not be empty")
    if len(value) > max_len:
        raise AgentError(f"{option}: {len(value)} characters (at most {max_len})")
    if not value.isprintable():
        raise AgentError(f"{option}: control characters are not allowed")
    return value
