"""``station-agent status``: what is waiting, what was acknowledged, how each device is doing.

Reads the buffer through its own parts opened read-only (``Buffer(path, read_only=True)``: the
same queries the agent uses; a period-file transport's status module reads its own tables on a
read-only connection), so it is safe to run beside the running agent, and never migrates or
changes the file.
"""

from __future__ import annotations

import importlib
import os
import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from agent.buffer import Buffer, DatabaseError, DeviceState
from agent.buffer.retention import Hold
from agent.config.model import Config
from agent.status.figures import add_backlog_age, failing_for_s, rfc3339
from agent.status.health import read_health
from agent.status.key import key_lines, key_section
from agent.status.maintenance import status_lines, status_section
from agent.support.clock_sync import MAX_ERROR_US, max_error_us
from core.errors import StorageError


def _when(ms: int | None, tz: ZoneInfo) -> str:
    """A time as the technician on site reads it: the station's local time, then UTC."""
    if ms is None:
        return "never"
    utc = datetime.fromtimestamp(ms / 1000, tz=UTC)
    local = utc.astimezone(tz)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()} ({utc:%H:%M:%S} UTC)"


def gather(config: Config) -> dict[str, Any]:
    """Collect the status figures from the buffer file (read-only)."""
    path = config.buffer.path
    if not path.exists():
        raise StorageError(f"{path}: no buffer yet (has the agent run with this config?)")
    try:
        buffer = Buffer(path, read_only=True)
        try:
            out = _gather(buffer, config)
            add_backlog_age(out, buffer, int(time.time() * 1000))
        finally:
            buffer.close()
    except DatabaseError as exc:
        raise StorageError(f"{path}: cannot read the buffer: {exc}") from None
    out["agent"] = _agent_state(read_health(path))
    error_us = max_error_us()
    out["clock"] = {
        "synchronized": None if error_us is None else error_us < MAX_ERROR_US,
        "max_error_s": None if error_us is None else round(error_us / 1e6, 3),
    }
    return out


def _agent_state(health: dict[str, Any] | None) -> dict[str, Any]:
    """Is the agent running, and what does it report that the buffer cannot hold?"""
    if not health:
        return {"running": False}
    pid = health.get("pid")
    alive = False
    if isinstance(pid, int):
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
    age_s = (time.time() * 1000 - (health.get("updated_at_ms") or 0)) / 1000
    return {**health, "running": alive and age_s < 30, "updated_s_ago": round(age_s, 1)}


def _gather(buffer: Buffer, config: Config) -> dict[str, Any]:
    last_seq, _digest, sealed_upto = buffer.chain.head()
    unsealed = buffer.store.count(after_id=sealed_upto)
    out: dict[str, Any] = {
        "station": config.station.id,
        "timezone": config.station.timezone,
        "buffer": str(config.buffer.path),
        "schema_version": buffer.file.schema_version,
        "last_seq": last_seq,
        "unsealed_readings": unsealed,
        "stored_readings": buffer.store.count(),
        "transports": [],
        "devices": [],
    }
    tz = ZoneInfo(config.station.timezone)
    out["maintenance"] = status_section(buffer, tz)
    out.update(key_section(buffer, config))
    holds = {h.transport: h for h in buffer.retention.holds([t.name for t in config.transports])}
    for t in config.transports:
        if t.status_module:  # files from stored readings, with a ledger of their own
            gathered = importlib.import_module(t.status_module).gather(buffer, t)
            out["transports"].append({**gathered, "status_module": t.status_module})
            continue
        batches, readings, oldest = buffer.ledger.backlog(t.name)
        last = buffer.ledger.last_acked(t.name)
        out["transports"].append(
            {
                "name": t.name,
                "type": t.type,
                "backlog_batches": batches,
                "backlog_readings": readings + unsealed,
                "oldest_unacked_seq": oldest,
                "last_acked_seq": last[0] if last else None,
                "last_acked_at": _when(last[1], tz) if last else "never",
                "last_acked_at_ms": last[1] if last else None,
                "quarantined": [
                    {"seq": s, "reason": r} for s, r in buffer.ledger.quarantined(t.name)
                ],
                "retention_held": _hold(holds.get(t.name)),
            }
        )
    known = [d.name for d in config.devices]
    by_name = buffer.devices.all()
    for name in known + sorted(set(by_name) - set(known)):
        d = by_name.get(name) or DeviceState(name, None, None, None, 0, 0)
        out["devices"].append(
            {
                "name": name,
                **_device_state(buffer, d),
                "last_good": _when(d.last_good_ms, tz),
                "last_good_ms": d.last_good_ms,
                "last_error": d.last_error,
                "last_error_at": _when(d.last_error_ms, tz),
                "last_error_at_ms": d.last_error_ms,
                "polls": d.polls,
                "faults": d.faults,
            }
        )
    return out


def _device_state(buffer: Buffer, d: DeviceState) -> dict[str, Any]:
    """``state``: ``ok``, ``FAULT`` (the last poll read nothing), ``partly failing: A, B``
    (the last poll read some channels, not A and B) or ``never polled``; and
    ``failing_channels``, the channels whose reading in the last poll is a fault."""
    failing: list[str] = []
    if d.last_error_ms is not None and (d.failing or d.partly_failing):
        failing = buffer.devices.failing_channels(d.name, d.last_error_ms)
    if not d.polls:
        state = "never polled"
    elif d.failing:
        state = "FAULT"
    elif d.partly_failing:
        state = "partly failing" + (f": {', '.join(failing)}" if failing else "")
    else:
        state = "ok"
    return {"state": state, "failing_channels": failing}


def _hold(hold: Hold | None) -> dict[str, Any] | None:
    """The batch from which on this transport keeps everything (pruning stops there)."""
    if hold is None:
        return None
    now = int(time.time() * 1000)
    return {
        "seq": hold.seq,
        "state": "quarantined" if hold.quarantined_at_ms is not None else "owed",
        "sealed_at_ms": hold.sealed_at_ms,
        "age_s": round((now - hold.sealed_at_ms) / 1000),
        "quarantined_at_ms": hold.quarantined_at_ms,
        "way_out": hold.way_out(),
    }


def render(status: dict[str, Any]) -> str:
    """The status as a technician reads it."""
    agent = status.get("agent", {})
    if agent.get("running"):
        state = f"running (pid {agent['pid']}, reported {agent['updated_s_ago']} s ago)"
    else:
        state = "NOT RUNNING"
    lines = [
        f"station {status['station']}  buffer {status['buffer']} "
        f"(schema version {status['schema_version']})",
        f"  agent: {state}",
        f"  last sealed batch: seq {status['last_seq']}; readings stored "
        f"{status['stored_readings']}, not yet sealed {status['unsealed_readings']}",
    ]
    if agent.get("running") and agent.get("missed_polls"):
        lines.append(
            f"  MISSED POLLS: {agent['missed_polls']} poll slot(s) could not start on time "
            "(stored as status 02 readings with the reason)"
        )
    if agent.get("running") and agent.get("storage_error"):
        lines.append(
            f"  BUFFER CANNOT STORE: {agent['storage_error']} — {agent['waiting_polls']} poll(s) "
            f"waiting in memory, {agent['dropped_polls']} dropped; free disk space"
        )
    clock = status.get("clock") or {}
    if clock.get("synchronized"):
        lines.append(f"  clock: synchronized (max error {clock['max_error_s']} s)")
    elif clock.get("synchronized") is False:
        lines.append(
            "  CLOCK NOT SYNCHRONIZED: readings are stamped by a clock no time service "
            "disciplines; check chrony or systemd-timesyncd (timedatectl)"
        )
    lines.extend(key_lines(status, lambda ms: _when(ms, ZoneInfo(status["timezone"]))))
    lines.append("transports:")
    for t in status["transports"]:
        if t.get("status_module"):
            lines.extend(importlib.import_module(t["status_module"]).render(t))
            continue
        lines.append(
            f"  {t['name']} ({t['type']}): backlog {t['backlog_batches']} batch(es), "
            f"{t['backlog_readings']} reading(s); last acknowledged seq "
            f"{t['last_acked_seq'] or '-'} at {t['last_acked_at']}"
        )
        if t.get("oldest_unacked_reading_age_s") is not None:
            lines.append(
                f"    oldest unacknowledged reading: {t['oldest_unacked_reading_age_s']} s old "
                f"({rfc3339(t['oldest_unacked_reading_at_ms'])})"
            )
        live = agent.get("transports", {}).get(t["name"], {}) if agent.get("running") else {}
        failing = failing_for_s(status, t["name"], int(time.time() * 1000))
        if failing is not None:
            lines.append(
                f"    FAILING for {failing:.0f} s (since "
                f"{rfc3339(live.get('failing_since_ms'))}): {live.get('last_error') or 'offline'}"
            )
        for q in t["quarantined"]:
            lines.append(f"    QUARANTINED seq {q['seq']}: {q['reason']}")
        if t["quarantined"]:
            lines.append(
                f"    once the cause is fixed: station-agent requeue --config FILE --transport "
                f"{t['name']}"
            )
        hold = t.get("retention_held")
        if hold and (hold["state"] == "quarantined" or hold["age_s"] >= 86_400):
            lines.append(
                f"    PRUNING HELD at seq {hold['seq']} ({hold['state']}, sealed "
                f"{hold['age_s'] / 86_400:.1f} days ago): nothing from it on is deleted and the "
                f"buffer grows; {hold['way_out']}"
            )
    lines.extend(status_lines(status["maintenance"]))
    lines.append("devices:")
    not_started = agent.get("devices_not_started") or {} if agent.get("running") else {}
    for d in status["devices"]:
        lines.append(
            f"  {d['name']}: {d['state']}; last good reading {d['last_good']}; "
            f"polls {d['polls']}, faults {d['faults']}"
        )
        if d["name"] in not_started:
            lines.append(f"    NOT LISTENING (retried): {not_started[d['name']]}")
        if d["last_error"]:
            lines.append(f"    last error ({d['last_error_at']}): {d['last_error']}")
    return "\n".join(lines)
