"""The signing key and the descriptor in force (``agent.status.key``)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from agent.status.key import key_lines, key_section
from agent.status.sections.base import StationState
from agent.status.sections.when import when


class SigningSection:
    name = "signing"

    def gather(self, state: StationState) -> dict[str, Any]:
        """``signing_key`` and ``descriptor``."""
        return key_section(state.buffer, state.config)

    def lines(self, section: dict[str, Any], tz: ZoneInfo) -> list[str]:
        return key_lines(section, lambda ms: when(ms, tz))
