"""No silent holes, no false faults: a poll slot the agent could not run is sealed as a signed
``missed_polls`` record of its slot (the warehouse takes it), never as a ``02`` reading."""

from __future__ import annotations

import base64
import json
import math
import sqlite3
import time
from datetime import datetime

from agent.runtime.agent import Agent
from tests.helpers.station import analyzer_device, http_transport, make_config, wait_for

INTERVAL_MS = 200


def _payloads(warehouse, station_id) -> list[dict]:
    """Every payload the warehouse holds, decoded here (base64url, JSON), not by the agent."""
    out = []
    for jws in warehouse.jws_list(station_id):
        part = jws.split(".")[1]
        out.append(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))
    return out


def _recorded_slots(payloads: list[dict]) -> dict[int, str]:
    """Slot ms -> reason, from the ``missed_polls`` records."""
    slots = {}
    for p in payloads:
        if p.get("kind") != "missed_polls":
            continue
        assert p["body"]["device"] == "stack-analyzer"
        for run in p["body"]["slots"]:
            first = datetime.fromisoformat(run["first"].replace("Z", "+00:00"))
            first_ms = round(first.timestamp() * 1000)
            for i in range(run["count"]):
                slots[first_ms + i * run["every_ms"]] = p["body"]["reason"]
    return slots


def test_polls_that_could_not_start_while_the_buffer_stalled_are_recorded(
    tmp_path, station_id, station_key, analyzer, warehouse
):
    """Another connection holds the buffer's write lock: the running poll hangs in its commit
    and the next slots cannot start. Once the buffer moves again, each of those slots is in a
    signed ``missed_polls`` record with the reason (the warehouse verifies and stores it);
    none is a ``02`` reading; counted."""
    port = warehouse.start_http()
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port, poll=INTERVAL_MS / 1000)],
        [http_transport(port)],
    )
    config.buffer.seal_interval_s = 0.5
    agent = Agent(config)
    agent.start()
    staller = sqlite3.connect(tmp_path / "buffer.db", isolation_level=None, timeout=30)
    try:
        wait_for(lambda: agent.poller.polled >= 10, 30, "some polls stored")
        staller.execute("BEGIN EXCLUSIVE")
        stalled_from = time.time() * 1000
        wait_for(lambda: agent.poller.missed_polls >= 8, 30, "polls that could not start")
        stalled_to = time.time() * 1000
        staller.execute("ROLLBACK")
        wait_for(
            lambda: len(_recorded_slots(_payloads(warehouse, station_id)))
            >= agent.poller.missed_polls,
            30,
            "the missed slots sealed and delivered (not only at the stop)",
        )
        assert agent.health()["missed_polls"] == agent.poller.missed_polls
    finally:
        staller.close()
        agent.stop(grace_s=2)

    assert warehouse.rejections() == []
    payloads = _payloads(warehouse, station_id)
    recorded = _recorded_slots(payloads)
    assert all(r.startswith("poll skipped") for r in recorded.values()), recorded
    db = sqlite3.connect(tmp_path / "buffer.db")
    rows = db.execute(
        "SELECT r.time_ms, r.status FROM readings r JOIN channels c ON c.id = r.channel "
        "WHERE c.device = 'stack-analyzer'"
    ).fetchall()
    db.close()
    assert [t for t, status in rows if status == 2] == [], "a missed slot stored as a fault"
    assert not set(recorded) & {t for t, _ in rows}, "a slot both polled and missed"
    # Every slot well inside the stall has readings or is recorded as missed.
    first = math.ceil(stalled_from / INTERVAL_MS) + 2
    last = math.floor(stalled_to / INTERVAL_MS) - 2
    assert last - first >= 3
    slots = {t // INTERVAL_MS for t, _ in rows} | {t // INTERVAL_MS for t in recorded}
    missing = [s for s in range(first, last + 1) if s not in slots]
    assert missing == [], f"{len(missing)} slot(s) of the stall left no trace"
