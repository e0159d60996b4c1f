"""``[health]``: how often the agent seals a ``health`` record (``agent.records.health``)."""

from __future__ import annotations

from pydantic import Field

from agent.support.sections import Section


class HealthConfig(Section):
    """The health record's timing; the section may be left out (these defaults)."""

    interval_s: float = Field(default=300.0, ge=1, le=86_400)
    """A health record (``reason: interval``) at least this often."""
    change_gap_s: float = Field(default=60.0, ge=1, le=3600)
    """At most one change record (``reason: change``) per this many seconds: a flapping
    device cannot flood the chain; a change within the gap is sealed when it ends."""
