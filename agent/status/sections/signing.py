"""The signing key and the descriptor in force (``agent.status.key``), and the warnings about
acknowledgements a transport takes unsigned (``agent.config.transport_notices``)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from agent.config.transport_notices import unsigned_ack_notices
from agent.status.key import key_lines, key_section
from agent.status.sections.base import StationState
from agent.status.sections.when import when


class SigningSection:
    name = "signing"

    def gather(self, state: StationState) -> dict[str, Any]:
        """``signing_key``, ``descriptor`` and ``warnings`` (unsigned acknowledgements)."""
        return key_section(state.buffer, state.config) | {
            "warnings": unsigned_ack_notices(state.config)
        }

    def lines(self, section: dict[str, Any], tz: ZoneInfo) -> list[str]:
        lines = key_lines(section, lambda ms: when(ms, tz))
        return lines + [f"  WARNING: {notice}" for notice in section.get("warnings", [])]
