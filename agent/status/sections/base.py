"""What every status section reads (``StationState``) and provides (``StatusSection``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from agent.buffer import Buffer
from agent.config.model import Config


@dataclass(frozen=True)
class StationState:
    """Everything a section may read: one station at one moment."""

    buffer: Buffer
    config: Config
    health: dict[str, Any] | None  # the agent's health report (None: none written)
    running: bool  # an agent is running on this buffer (its report is current)
    now_ms: int

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.config.station.timezone)


class StatusSection(Protocol):
    """One feature's part of ``status``, the page and ``/metrics``."""

    name: str

    def gather(self, state: StationState) -> dict[str, Any]:
        """The section's figures (top-level keys of ``status --json``)."""
        ...

    def lines(self, section: dict[str, Any], tz: ZoneInfo) -> list[str]:
        """The section as ``status`` prints it, from what ``gather`` gave."""
        ...
