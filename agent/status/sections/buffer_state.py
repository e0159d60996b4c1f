"""The buffer: the station, the file, the chain head and how many readings it holds."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from agent.status.sections.base import StationState


class BufferSection:
    name = "buffer"

    def gather(self, state: StationState) -> dict[str, Any]:
        buffer, config = state.buffer, state.config
        last_seq, _digest, sealed_upto = buffer.chain.head()
        return {
            "station": config.station.id,
            "timezone": config.station.timezone,
            "buffer": str(config.buffer.path),
            "schema_version": buffer.file.schema_version,
            "last_seq": last_seq,
            "unsealed_readings": buffer.store.count(after_id=sealed_upto),
            "stored_readings": buffer.store.count(),
        }

    def lines(self, section: dict[str, Any], tz: ZoneInfo) -> list[str]:
        return [
            f"station {section['station']}  buffer {section['buffer']} "
            f"(schema version {section['schema_version']})",
            f"  last sealed batch: seq {section['last_seq']}; readings stored "
            f"{section['stored_readings']}, not yet sealed {section['unsealed_readings']}",
        ]
