"""Each transport: what it still owes (backlog, oldest reading), its last acknowledgement, its
quarantined batches, whether pruning is held for it, and since when it has been failing. A
period-file transport (TT10) gives its own figures through its status module."""

from __future__ import annotations

import importlib
from typing import Any
from zoneinfo import ZoneInfo

from agent.buffer.retention import Hold
from agent.status.figures import rfc3339
from agent.status.sections.base import StationState
from agent.status.sections.when import when

MAX_LISTED = 50  # quarantined batches listed per transport (``quarantined_count``: all of them)
HELD_LONG_S = 86_400


def _hold(hold: Hold | None, now_ms: int) -> dict[str, Any] | None:
    """The batch from which on this transport keeps everything (pruning stops there)."""
    if hold is None:
        return None
    return {
        "seq": hold.seq,
        "state": "quarantined" if hold.quarantined_at_ms is not None else "owed",
        "sealed_at_ms": hold.sealed_at_ms,
        "age_s": round((now_ms - hold.sealed_at_ms) / 1000),
        "quarantined_at_ms": hold.quarantined_at_ms,
        "way_out": hold.way_out(),
    }


def failing_since(
    reported_ms: int | None, last_acked_ms: int | None, written_ms: int | None
) -> int | None:
    """Since when a transport has been failing: what the agent reported (its health report is
    rewritten each second), unless the buffer recorded an acknowledgement after the report was
    written, which says it delivers again."""
    if reported_ms is None:
        return None
    if last_acked_ms is not None and written_ms is not None and last_acked_ms > written_ms:
        return None
    return reported_ms


def _live(state: StationState, name: str, last_acked_ms: int | None) -> dict[str, Any]:
    """What the running agent reports of the transport, and since when it has been failing."""
    health = state.health or {}
    live = (health.get("transports") or {}).get(name, {}) if state.running else {}
    since = failing_since(live.get("failing_since_ms"), last_acked_ms, health.get("updated_at_ms"))
    return {
        "connected": live.get("connected"),
        "last_error": live.get("last_error"),
        "failing_since_ms": since,
        "failing_for_s": None if since is None else max(0.0, (state.now_ms - since) / 1000),
        "acked_since_start": live.get("acked"),
    }


def _batch_transport(state: StationState, t: Any, unsealed: int, hold: Hold | None) -> dict:
    ledger, now_ms = state.buffer.ledger, state.now_ms
    batches, readings, oldest_seq = ledger.backlog(t.name)
    last = ledger.last_acked(t.name)
    oldest_ms = state.buffer.records.oldest_unacked_reading_ms(t.name)
    quarantined = ledger.quarantined(t.name)
    return {
        "name": t.name,
        "type": t.type,
        "backlog_batches": batches,
        "backlog_readings": readings + unsealed,
        "oldest_unacked_seq": oldest_seq,
        "oldest_unacked_reading_at_ms": oldest_ms,
        "oldest_unacked_reading_age_s": (
            None if oldest_ms is None else round(max(0, now_ms - oldest_ms) / 1000, 1)
        ),
        "last_acked_seq": last[0] if last else None,
        "last_acked_at": when(last[1], state.tz) if last else "never",
        "last_acked_at_ms": last[1] if last else None,
        "quarantined": [{"seq": s, "reason": r} for s, r in quarantined[:MAX_LISTED]],
        "quarantined_count": len(quarantined),
        "retention_held": _hold(hold, now_ms),
        **_live(state, t.name, last[1] if last else None),
    }


class TransportsSection:
    name = "transports"

    def gather(self, state: StationState) -> dict[str, Any]:
        buffer, config = state.buffer, state.config
        unsealed = buffer.store.count(after_id=buffer.chain.head()[2])
        holds = {
            h.transport: h for h in buffer.retention.holds([t.name for t in config.transports])
        }
        out = []
        for t in config.transports:
            if t.status_module:  # files from stored readings, with a ledger of their own
                gathered = importlib.import_module(t.status_module).gather(buffer, t)
                live = _live(state, t.name, None)
                out.append({**live, **gathered, "status_module": t.status_module})
            else:
                out.append(_batch_transport(state, t, unsealed, holds.get(t.name)))
        return {"transports": out}

    def lines(self, section: dict[str, Any], tz: ZoneInfo) -> list[str]:
        lines = ["transports:"]
        for t in section["transports"]:
            if t.get("status_module"):
                lines.extend(importlib.import_module(t["status_module"]).render(t))
            else:
                lines.extend(_transport_lines(t))
        return lines


def _transport_lines(t: dict[str, Any]) -> list[str]:
    lines = [
        f"  {t['name']} ({t['type']}): backlog {t['backlog_batches']} batch(es), "
        f"{t['backlog_readings']} reading(s); last acknowledged seq "
        f"{t['last_acked_seq'] or '-'} at {t['last_acked_at']}"
    ]
    if t["oldest_unacked_reading_age_s"] is not None:
        lines.append(
            f"    oldest unacknowledged reading: {t['oldest_unacked_reading_age_s']} s old "
            f"({rfc3339(t['oldest_unacked_reading_at_ms'])})"
        )
    if t["failing_for_s"] is not None:
        lines.append(
            f"    FAILING for {t['failing_for_s']:.0f} s (since "
            f"{rfc3339(t['failing_since_ms'])}): {t['last_error'] or 'offline'}"
        )
    for q in t["quarantined"]:
        lines.append(f"    QUARANTINED seq {q['seq']}: {q['reason']}")
    if t["quarantined_count"] > len(t["quarantined"]):
        lines.append(f"    ... and {t['quarantined_count'] - len(t['quarantined'])} more")
    if t["quarantined"]:
        lines.append(
            f"    once the cause is fixed: station-agent requeue --config FILE --transport "
            f"{t['name']}"
        )
    hold = t["retention_held"]
    if hold and (hold["state"] == "quarantined" or hold["age_s"] >= HELD_LONG_S):
        lines.append(
            f"    PRUNING HELD at seq {hold['seq']} ({hold['state']}, sealed "
            f"{hold['age_s'] / 86_400:.1f} days ago): nothing from it on is deleted and the "
            f"buffer grows; {hold['way_out']}"
        )
    return lines
