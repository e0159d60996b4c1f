"""``station-agent tt10 export``: the TT10 files of a time window, rebuilt from the buffer.

The same bytes the transport sends (same readings, same settings), written under ``--out`` in
the transport's directory layout, so a technician can hand the authority any period again for
as long as the buffer keeps its readings (``buffer.retention_days``, at least 60 days).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from agent.buffer import Buffer, DatabaseError
from agent.transports.tt10.config import Tt10TransportConfig
from agent.transports.tt10.fileformat import build_file, periods_with_readings
from core.errors import AgentError, StorageError
from core.reading import Reading

VN = timezone(timedelta(hours=7))
DAY_MS = 86_400_000


def parse_time(text: str, what: str) -> int:
    """An ISO 8601 time as epoch ms; without an offset it is Vietnam time (UTC+7)."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise AgentError(
            f"{what} {text!r}: expected an ISO time like 2026-05-29T08:00 (UTC+7 unless an "
            "offset or Z is given)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=VN)
    return round(when.timestamp() * 1000)


def pick_transport(transports: list, name: str | None) -> Tt10TransportConfig:
    """The config's TT10 transport (by name when there are several)."""
    tt10 = [t for t in transports if t.type == "tt10"]
    if name is not None:
        tt10 = [t for t in tt10 if t.name == name]
    if len(tt10) != 1:
        names = ", ".join(t.name for t in transports if t.type == "tt10") or "none"
        wanted = f"named {name!r}" if name else "(give --transport NAME)"
        raise AgentError(f"need exactly one tt10 transport {wanted}; tt10 transports: {names}")
    return tt10[0]


def stored_readings(buffer: Buffer, start_ms: int, end_ms: int) -> list[Reading]:
    """The buffer's readings taken in [start_ms, end_ms), in time order."""
    rows = buffer.store.readings_between(start_ms, end_ms)
    return [Reading(r.device, r.param, r.unit, r.time_ms, r.value, r.status) for r in rows]


def export_files(
    buffer_path: Path, config: Tt10TransportConfig, start_ms: int, end_ms: int, out: Path
) -> list[Path]:
    """Write the file of every period that starts in [start, end) and has readings."""
    if end_ms <= start_ms:
        raise AgentError("--to must be after --from")
    if not buffer_path.exists():
        raise StorageError(f"{buffer_path}: no buffer (has the agent run with this config?)")
    fmt = config.file_format()
    written: list[Path] = []
    buffer = Buffer(buffer_path, read_only=True)
    try:
        cursor = fmt.period_start(start_ms)
        while cursor < end_ms:
            upto = min(cursor + DAY_MS, fmt.period_start(end_ms - 1) + fmt.interval_ms)
            readings = stored_readings(buffer, cursor, upto)
            for period in periods_with_readings(fmt, readings):
                tt10_file = build_file(fmt, period, readings)
                target = out / tt10_file.directory.strip("/") / tt10_file.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tt10_file.data)
                written.append(target)
            cursor = upto
    except DatabaseError as exc:
        raise StorageError(f"{buffer_path}: reading the buffer failed: {exc}") from None
    finally:
        buffer.close()
    return written
