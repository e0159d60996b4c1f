"""The fleet as ``station-warehouse status`` and the API's ``GET /fleet`` show it (both call
:func:`view`): per station its latest ``health`` record
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
MAX_LATE_S = 30 * 86400.0  # the largest threshold asked (status --late-s, GET /fleet?late_s=)
MAX_LISTED = 5  # failing devices named per station on the text line (the JSON has them all)


def view(
    rows: list[StationStatus],
    health: dict[str, LatestRecord],
    now: datetime,
    late_s: float = LATE_S,
) -> dict[str, Any]:
    """The fleet as ``status --json`` (each line's ``fleet``) and ``GET /fleet`` give it:
    ``stations`` (``station_health`` of each, in ``rows``' order), ``summary`` (``counts``)
    and the ``late_s`` applied. ``rows``: ``Store.status()``; ``health``: its latest_records."""
    stations = [station_health(st, health.get(st.station), now, late_s) for st in rows]
    return {"stations": stations, "summary": counts(stations), "late_s": late_s}


def parse_late_s(text: str) -> float:
    """``text`` as a late threshold in seconds: above 0, at most MAX_LATE_S; ValueError saying
    what was expected otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected seconds (a number), got {text[:40]!r}") from None
    if not 0 < value <= MAX_LATE_S:  # also refuses nan and inf
        raise ValueError(
            f"expected seconds above 0 and at most {MAX_LATE_S:.0f} (30 days), got {text[:40]!r}"
        )
    return value


def station_health(
    st: StationStatus, latest: LatestRecord | None, now: datetime, late_s: float = LATE_S
) -> dict[str, Any]:
    """One station's fleet figures: its id, its newest batch (``last_sealed_at``, its age
    ``last_batch_age_s``), ``late``, and from its latest health record (``health_seq``,
    ``health_sealed_at``; all None: none yet) ``failing`` (device, state, channels, error),
    ``clock_synced``, ``maintenance`` (devices), ``backlog`` (batches per transport), the
    configuration in force (digest, source, remote version, pinned)."""
    age = (now - st.last_sealed_at).total_seconds() if st.last_sealed_at else None
    out: dict[str, Any] = {
        "station": st.station,
        "last_sealed_at": st.last_sealed_at.isoformat() if st.last_sealed_at else None,
        "last_batch_age_s": None if age is None else round(age, 1),
        "late": age is None or age > late_s,
    }
    if latest is None:
        return out | dict.fromkeys(_HEALTH_FIGURES)
    body = latest.body
    devices = body.get("devices") or []
    transports = body.get("transports") or []
    config = body.get("config") or {}
    return out | {
        "health_seq": latest.seq,
        "health_sealed_at": latest.sealed_at.isoformat(),
        "health_age_s": round((now - latest.sealed_at).total_seconds(), 1),
        "failing": [d for d in devices if d.get("state") in ("fault", "partial")],
        "maintenance": [d["name"] for d in devices if d.get("state") == "maintenance"],
        "clock_synced": bool((body.get("clock") or {}).get("synced")),
        "backlog": {t["name"]: t.get("backlog", 0) for t in transports},
        "failing_transports": [t["name"] for t in transports if t.get("state", "ok") != "ok"],
        "config_digest": config.get("digest"),
        "config_source": config.get("source"),
        "config_remote_version": config.get("remote_version"),
        "config_pinned": config.get("pinned"),
        "agent_version": body.get("agent_version"),
    }


_HEALTH_FIGURES = (
    "health_seq",
    "health_sealed_at",
    "health_age_s",
    "failing",
    "maintenance",
    "clock_synced",
    "backlog",
    "failing_transports",
    "config_digest",
    "config_source",
    "config_remote_version",
    "config_pinned",
    "agent_version",
)


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


def counts(fleets: list[dict[str, Any]]) -> dict[str, int]:
    """How many stations, and of them late, failing (a device in fault or partly failing),
    on an unsynchronized clock, with a device in maintenance (no health record: only late)."""
    return {
        "stations": len(fleets),
        "late": sum(1 for f in fleets if f["late"]),
        "failing": sum(1 for f in fleets if f["failing"]),
        "unsynced_clock": sum(1 for f in fleets if f["clock_synced"] is False),
        "maintenance": sum(1 for f in fleets if f["maintenance"]),
    }


def summary_line(counted: dict[str, int]) -> str:
    """``N station(s): x late, y failing, z unsynced clock, w in maintenance`` (``counts``)."""
    return (
        f"{counted['stations']} station(s): {counted['late']} late, {counted['failing']} "
        f"failing, {counted['unsynced_clock']} unsynced clock, {counted['maintenance']} in "
        "maintenance"
    )
