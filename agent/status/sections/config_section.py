"""The configuration in force: local file or remote document, digests, pinned
(``agent.status.config_state``)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from agent.status.config_state import config_state
from agent.status.sections.base import StationState


class ConfigSection:
    name = "config"

    def gather(self, state: StationState) -> dict[str, Any]:
        """``config``: see ``config_state``."""
        return {"config": config_state(state.config)}

    def lines(self, section: dict[str, Any], tz: ZoneInfo) -> list[str]:
        c = section.get("config")
        if not c:
            return []
        where = "local file" if c["source"] == "local" else f"remote version {c['remote_version']}"
        line = f"configuration: {where}, digest {str(c['digest'])[:12]}"
        if c["file_digest"] and c["file_digest"] != c["digest"]:
            line += f" (file on disk: {c['file_digest'][:12]})"
        return [line + (", PINNED to the local file" if c["pinned"] else "")]
