"""Record kind ``maintenance``: a maintenance or calibration window began or ended.

``source = "technician"``: ``station-agent maintenance start`` / ``stop``, or the window's time
ran out (``event`` ``start``, ``stop``, ``expire``). ``source = "analyzer"``: the analyzer's own
status register switched a channel to calibrating (``01``) or back (``event`` ``start``,
``end``). The start and end of one window carry the same ``window``. Field by field:
docs/protocol.md, "Record kind maintenance".
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from core.model import Model
from core.records import register_kind

MAX_TECHNICIAN = 64
MAX_REASON = 200
MAX_CHANNELS = 64
_RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
Event = Literal["start", "stop", "expire", "end"]


class MaintenanceRecord(Model):
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


register_kind("maintenance", MaintenanceRecord)
