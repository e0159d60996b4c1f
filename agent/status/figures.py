"""What ``status`` adds to the buffer's figures so it tells the truth, and its exit code.

* ``--json``: every time RFC 3339 UTC or null (no local-time prose);
* the exit code: 0 healthy, 3 the agent is not running, 4 a transport has been failing longer
  than ``--fail-after`` seconds, 5 a device is in FAULT (its last poll read nothing; a device
  only *partly failing* stays 0) — monitoring scripts can rely on it. When several hold, the
  first in this order: 3, 4, 5.

The figures themselves come from the sections (``agent.status.sections``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

EXIT_OK, EXIT_NOT_RUNNING, EXIT_TRANSPORT_FAILING, EXIT_DEVICE_FAULT = 0, 3, 4, 5
FAULT_STATE = "FAULT"  # a device's ``state`` in the report when its last poll read nothing
DEFAULT_FAIL_AFTER_S = 900.0


def rfc3339(ms: int | None) -> str | None:
    """UTC, milliseconds, ``Z``; None stays None."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def exit_code(status: dict[str, Any], fail_after_s: float, now_ms: int | None = None) -> int:
    """0 healthy; 3 the agent is not running; 4 a transport failing for over ``fail_after_s``;
    5 a configured device in FAULT (partly failing is 0)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if not (status.get("agent") or {}).get("running"):
        return EXIT_NOT_RUNNING
    for t in status["transports"]:
        since = t.get("failing_since_ms")  # the transports section's (agent.status.sections)
        if since is not None and (now_ms - since) / 1000 > fail_after_s:
            return EXIT_TRANSPORT_FAILING
    devices = status.get("devices", [])
    if any(d.get("state") == FAULT_STATE and d.get("configured", True) for d in devices):
        return EXIT_DEVICE_FAULT
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
