"""The buffer: the station, the file, the chain head, how many readings it holds, and its size
on disk and the room left there."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.status.sections.base import StationState


def buffer_bytes(path: Path) -> int:
    """The buffer's size on disk: the database and its write-ahead log."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        try:
            total += path.with_name(path.name + suffix).stat().st_size
        except OSError:
            pass
    return total


def free_bytes(path: Path) -> int | None:
    """Free bytes on the buffer's file system (None: cannot ask)."""
    try:
        return shutil.disk_usage(path.parent).free
    except OSError:
        return None


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
            "buffer_bytes": buffer_bytes(config.buffer.path),
            "free_bytes": free_bytes(config.buffer.path),
        }

    def lines(self, section: dict[str, Any], tz: ZoneInfo) -> list[str]:
        return [
            f"station {section['station']}  buffer {section['buffer']} "
            f"(schema version {section['schema_version']})",
            f"  last sealed batch: seq {section['last_seq']}; readings stored "
            f"{section['stored_readings']}, not yet sealed {section['unsealed_readings']}",
            f"  on disk: {_mb(section['buffer_bytes'])}"
            + ("" if section["free_bytes"] is None else f", {_mb(section['free_bytes'])} free"),
        ]


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"
