"""What ``station-agent status`` shows for a TT10 transport (read from the ledger in buffer.db)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agent.buffer import Buffer
from agent.buffer.tt10 import summary
from agent.transports.tt10.fileformat import vn_time


def _utc(ms: int | None) -> str:
    if ms is None:
        return "never"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def gather(buffer: Buffer, config: Any) -> dict[str, Any]:
    """The status figures of one TT10 transport."""
    s = summary(buffer.file, config.name)
    return {
        "name": config.name,
        "type": config.type,
        "last_file_delivered": s.last_delivered_path,
        "last_delivered_at": _utc(s.last_delivered_ms),
        "backlog_files": s.backlog,
        "oldest_unsent_file": s.oldest_unsent_path,
        "oldest_unsent_period": (
            vn_time(s.oldest_unsent_ms).strftime("%Y-%m-%d %H:%M:%S UTC+7")
            if s.oldest_unsent_ms is not None
            else None
        ),
        "last_error": s.last_error,
        "last_error_at": _utc(s.last_error_ms) if s.last_error else None,
    }


def render(t: dict[str, Any]) -> list[str]:
    """The lines a technician reads."""
    lines = [
        f"  {t['name']} (tt10): last file delivered {t['last_file_delivered'] or '-'} at "
        f"{t['last_delivered_at']}; backlog {t['backlog_files']} file(s)"
        + (
            f", oldest unsent {t['oldest_unsent_file']} (period from {t['oldest_unsent_period']})"
            if t["backlog_files"]
            else ""
        )
    ]
    if t["last_error"]:
        lines.append(f"    last error ({t['last_error_at']}): {t['last_error']}")
    return lines
