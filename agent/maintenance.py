"""Maintenance and calibration records: what a technician or the analyzer said, for the chain.

A record of kind ``maintenance`` tells the warehouse that a window began or ended (docs/protocol.md,
"Maintenance records"). ``source = "technician"``: ``station-agent maintenance start`` /
``stop``, or the window's time ran out (``event`` ``start``, ``stop``, ``expire``).
``source = "analyzer"``: the analyzer's own status register switched a channel to calibrating
(``01``) or back (``event`` ``start``, ``end``). Start and end of one window share ``window``.

Here: the record body's model, its builder from a stored window, and the checks of what a
technician types (duration, names, free text), all bounded.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.buffer.maintenance import Window
from core.errors import AgentError
from core.reading import rfc3339_ms

KIND = "maintenance"
MAX_DURATION_S = 7 * 86_400  # a longer job is several windows: the station must not stay 01
MAX_TECHNICIAN = 64
MAX_REASON = 200
MAX_CHANNELS = 64
MAX_OPEN_WINDOWS = 20  # technician windows open at once on one device
_DURATION = re.compile(r"(\d{1,7})([dhms])")
_UNIT_S = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
Event = Literal["start", "stop", "expire", "end"]


class MaintenanceRecord(BaseModel):
    """The body of a ``maintenance`` record (times RFC 3339 UTC with milliseconds)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,  # "from" in JSON, whoever dumps it
    )

    event: Event
    """``start``; ``stop`` (a technician ended it early), ``expire`` (its time ran out), ``end``
    (the analyzer stopped reporting calibrating)."""
    source: Literal["technician", "analyzer"]
    window: int = Field(ge=1)
    """The station's number for the window; its start and end records carry the same."""
    device: str = Field(min_length=1, max_length=200)
    channels: list[str] | None = Field(max_length=MAX_CHANNELS)
    """The channels' parameter names; null: every channel of the device."""
    technician: str | None = Field(max_length=MAX_TECHNICIAN)
    """Who opened the window, as given to ``maintenance start`` (null for the analyzer)."""
    reason: str | None = Field(max_length=MAX_REASON)
    from_: str = Field(alias="from", pattern=_RFC3339)
    until: str | None = Field(pattern=_RFC3339)
    """The planned end (null for the analyzer's own calibration)."""
    stopped: str | None = Field(pattern=_RFC3339)
    """When the window ended (null in a ``start`` record)."""
    stopped_by: str | None = Field(max_length=MAX_TECHNICIAN)
    """Who ended it early (``stop``), as given to ``maintenance stop``."""


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
