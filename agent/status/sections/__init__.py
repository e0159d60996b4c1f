"""What ``status``, the station page and ``/metrics`` show: one section per feature, computed once.

Each section reads one ``StationState`` (the buffer opened read-only, the configuration, the
running agent's health report and the time) and gives a dict (``gather``) that all three
consumers take their values from, in the same words; ``lines`` turns that dict into the text
``status`` prints. ``status`` reads the health report from the health file; the page and the
metrics from the running agent's view (``agent.web.view.RuntimeView.health``), the very dict
the agent writes to that file.

Sections, in the order ``status`` prints them: ``buffer`` (the chain and what is stored),
``agent`` (is it running, missed polls, a buffer that cannot store), ``clock`` (clock sync),
``signing`` (the key and the descriptor in force), ``config`` (the configuration in force:
local file or remote document), ``transports`` (backlog, acknowledgements,
quarantine, failing since, a period-file transport's own figures such as TT10's),
``maintenance`` (windows now and lately ended), ``devices`` (state of each device).
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from agent.status.sections.agent_state import AgentSection
from agent.status.sections.base import StationState, StatusSection
from agent.status.sections.buffer_state import BufferSection
from agent.status.sections.clock import ClockSection
from agent.status.sections.config_section import ConfigSection
from agent.status.sections.devices import DevicesSection
from agent.status.sections.maintenance import MaintenanceSection
from agent.status.sections.signing import SigningSection
from agent.status.sections.transports import TransportsSection

__all__ = ["StationState", "StatusSection", "gather_all", "merged", "render_all", "sections"]


def sections() -> list[StatusSection]:
    """Every section, in the order ``status`` prints them."""
    return [
        BufferSection(),
        AgentSection(),
        ClockSection(),
        SigningSection(),
        ConfigSection(),
        TransportsSection(),
        MaintenanceSection(),
        DevicesSection(),
    ]


def gather_all(state: StationState) -> dict[str, dict[str, Any]]:
    """Section name -> its figures."""
    return {s.name: s.gather(state) for s in sections()}


def merged(gathered: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The sections' figures as one dict (``status --json``)."""
    out: dict[str, Any] = {}
    for figures in gathered.values():
        out.update(figures)
    return out


def render_all(status: dict[str, Any], tz: ZoneInfo) -> list[str]:
    """Every section's lines, in order, from the merged figures (each section reads its own
    keys)."""
    lines: list[str] = []
    for s in sections():
        lines.extend(s.lines(status, tz))
    return lines
