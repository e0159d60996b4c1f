"""What ``status`` adds to the buffer's figures so it tells the truth, and its exit code.

* the age of the oldest reading a transport has not had acknowledged (sealed or not);
* since when a transport has been failing (from the running agent's health report);
* ``--json``: every time RFC 3339 UTC or null (no local-time prose);
* the exit code: 0 healthy, 3 the agent is not running, 4 a transport has been failing longer
  than ``--fail-after`` seconds — monitoring scripts can rely on it.

Kept apart from the gathering (``agent.status.report``) so either can change without the other.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from agent.buffer import Buffer

EXIT_OK, EXIT_NOT_RUNNING, EXIT_TRANSPORT_FAILING = 0, 3, 4
DEFAULT_FAIL_AFTER_S = 900.0


def rfc3339(ms: int | None) -> str | None:
    """UTC, milliseconds, ``Z``; None stays None."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def add_backlog_age(status: dict[str, Any], buffer: Buffer, now_ms: int) -> None:
    """Put each transport's oldest unacknowledged reading (time, age) into ``status``."""
    for t in status["transports"]:
        oldest = buffer.ledger.oldest_unacked_reading_ms(t["name"])
        t["oldest_unacked_reading_at_ms"] = oldest
        t["oldest_unacked_reading_age_s"] = (
            None if oldest is None else round(max(0, now_ms - oldest) / 1000, 1)
        )


def failing_for_s(status: dict[str, Any], name: str, now_ms: int) -> float | None:
    """How long the running agent reports transport ``name`` failing; None if it is not."""
    agent = status.get("agent") or {}
    if not agent.get("running"):
        return None
    since = (agent.get("transports") or {}).get(name, {}).get("failing_since_ms")
    if since is None:
        return None
    # The health file is rewritten each second; the buffer records each acknowledgement as it
    # comes. One recorded after the agent last wrote its view says the transport delivers.
    acked_ms = next(
        (t.get("last_acked_at_ms") for t in status.get("transports", []) if t["name"] == name),
        None,
    )
    written_ms = agent.get("updated_at_ms")
    if acked_ms is not None and written_ms is not None and acked_ms > written_ms:
        return None
    return max(0.0, (now_ms - since) / 1000)


def exit_code(status: dict[str, Any], fail_after_s: float, now_ms: int | None = None) -> int:
    """0 healthy; 3 the agent is not running; 4 a transport failing for over ``fail_after_s``."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if not (status.get("agent") or {}).get("running"):
        return EXIT_NOT_RUNNING
    for t in status["transports"]:
        failing = failing_for_s(status, t["name"], now_ms)
        if failing is not None and failing > fail_after_s:
            return EXIT_TRANSPORT_FAILING
    return EXIT_OK


def json_view(status: dict[str, Any]) -> Any:
    """``status`` for machines: ``*_ms`` times become ``*`` RFC 3339 strings (or null), the
    local-time prose made for the technician is left out."""
    if isinstance(status, list):
        return [json_view(v) for v in status]
    if not isinstance(status, dict):
        return status
    prose = {k.removesuffix("_ms") for k in status if k.endswith("_ms")}
    out: dict[str, Any] = {}
    for key, value in status.items():
        if key.endswith("_ms") and (value is None or isinstance(value, int | float)):
            out[key.removesuffix("_ms")] = rfc3339(None if value is None else int(value))
        elif key in prose:
            continue  # the human form of a time given in *_ms beside it
        else:
            out[key] = json_view(value)
    return out
