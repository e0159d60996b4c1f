"""``[web]``: the local station page and ``/metrics``. Off unless the section is present."""

from __future__ import annotations

from pydantic import Field

from agent.sections import Section


class WebConfig(Section):
    """Where the station page and the metrics listen (loopback unless told otherwise)."""

    host: str = Field(default="127.0.0.1", min_length=1, max_length=255)
    """``0.0.0.0`` to reach the page from a phone on the station's LAN."""
    port: int = Field(default=8180, ge=0, le=65535)
    """0: any free port (the chosen one is logged as ``web_listening``)."""
    chart_points: int = Field(default=300, ge=10, le=5000)
    """At most this many points per 24 h chart (averaged per time slice)."""
