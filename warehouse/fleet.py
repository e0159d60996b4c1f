"""The fleet as ``station-warehouse status`` shows it: per station its latest ``health`` record
(docs/protocol.md, "Record kind health") read into what an operator acts on — late, failing
devices, an unsynchronized clock, devices in maintenance, backlog — and one summary line.

A station is *late* when its newest batch was sealed more than ``late_s`` ago (default 600 s:
twice the agent's default health interval, so a live station is never late by this rule). The
health record's body was checked against its model when it arrived; it is read here as stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from warehouse.store.model import LatestRecord, StationStatus

LATE_S = 600.0  # 2 x the agent's default [health] interval_s
MAX_LISTED = 5  # failing devices named per station on the text line (the JSON has them all)


def station_health(
    st: StationStatus, latest: LatestRecord | None, now: datetime, late_s: float = LATE_S
) -> dict[str, Any]:
    """One station's fleet figures: ``late``, ``failing`` (device, state, channels, error),
    ``clock_synced``, ``maintenance`` (devices), ``backlog`` (batches per transport) and the
    health record they come from (``health_seq``, ``health_sealed_at``; None: none yet)."""
    age = (now - st.last_sealed_at).total_seconds() if st.last_sealed_at else None
    late = age is None or age > late_s
    if latest is None:
        return {"late": late, "last_batch_age_s": age, "health_seq": None}
    body = latest.body
    devices = body.get("devices") or []
    return {
        "late": late,
        "last_batch_age_s": None if age is None else round(age, 1),
        "health_seq": latest.seq,
        "health_sealed_at": latest.sealed_at.isoformat(),
        "health_age_s": round((now - latest.sealed_at).total_seconds(), 1),
        "failing": [d for d in devices if d.get("state") in ("fault", "partial")],
        "maintenance": [d["name"] for d in devices if d.get("state") == "maintenance"],
        "clock_synced": bool((body.get("clock") or {}).get("synced")),
        "backlog": {t["name"]: t.get("backlog", 0) for t in body.get("transports") or []},
        "failing_transports": [
            t["name"] for t in body.get("transports") or [] if t.get("state", "ok") != "ok"
        ],
        "config_digest": (body.get("config") or {}).get("digest"),
        "agent_version": body.get("agent_version"),
    }


def health_line(fleet: dict[str, Any], ago: Any) -> str:
    """The station's second line in ``status``: ``ago(seconds)`` renders an age."""
    late = (
        f"LATE (no batch for {ago(fleet['last_batch_age_s'])})"
        if fleet["late"] and fleet["last_batch_age_s"] is not None
        else "LATE (no batch yet)"
        if fleet["late"]
        else "on time"
    )
    if fleet["health_seq"] is None:
        return f"  health: none received; {late}"
    parts = [late]
    failing = fleet["failing"]
    if failing:
        named = ", ".join(_device(d) for d in failing[:MAX_LISTED])
        more = f" and {len(failing) - MAX_LISTED} more" if len(failing) > MAX_LISTED else ""
        parts.append(f"FAILING {named}{more}")
    if not fleet["clock_synced"]:
        parts.append("CLOCK NOT SYNCHRONIZED")
    if fleet["maintenance"]:
        parts.append(f"IN MAINTENANCE {', '.join(fleet['maintenance'])}")
    if fleet["failing_transports"]:
        parts.append(f"TRANSPORT FAILING {', '.join(fleet['failing_transports'])}")
    backlog = sum(fleet["backlog"].values())
    if backlog:
        parts.append(f"backlog {backlog} batch(es)")
    return f"  health (seq {fleet['health_seq']}, {ago(fleet['health_age_s'])} ago): " + "; ".join(
        parts
    )


def _device(d: dict[str, Any]) -> str:
    what = d["state"]
    if d.get("failing_channels") and d["state"] == "partial":
        what += ": " + ",".join(d["failing_channels"])
    return f"{d['name']} ({what})"


def summary(fleets: list[dict[str, Any]]) -> str:
    """``N station(s): x late, y failing, z unsynced clock, w in maintenance``."""
    n = len(fleets)
    late = sum(1 for f in fleets if f["late"])
    failing = sum(1 for f in fleets if f.get("failing"))
    unsynced = sum(1 for f in fleets if f["health_seq"] is not None and not f["clock_synced"])
    maintenance = sum(1 for f in fleets if f.get("maintenance"))
    return (
        f"{n} station(s): {late} late, {failing} failing, {unsynced} unsynced clock, "
        f"{maintenance} in maintenance"
    )
