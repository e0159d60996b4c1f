"""``[health]``: how often the agent seals a ``health`` record (``agent.records.health``)."""

from __future__ import annotations

from pydantic import Field

from agent.support.sections import Section

INTERVAL_S = 300.0
CHANGE_GAP_S = 60.0


class HealthConfig(Section):
    """The health record's timing; the section may be left out (these defaults)."""

    interval_s: float = Field(default=INTERVAL_S, ge=1, le=86_400)
    """A health record (``reason: interval``) at least this often."""
    change_gap_s: float = Field(default=CHANGE_GAP_S, ge=1, le=3600)
    """At most one change record (``reason: change``) per this many seconds: a flapping
    device cannot flood the chain; a change within the gap is sealed when it ends."""


def timing(section: HealthConfig | None) -> tuple[float, float]:
    """(interval_s, change_gap_s) of the section, the defaults without one."""
    if section is None:
        return INTERVAL_S, CHANGE_GAP_S
    return section.interval_s, section.change_gap_s
