"""Requests from other processes (``station-agent maintenance``, ``rotate-key``) reach the running
agent through one counter in the buffer: an idle agent reads that counter each second and nothing
else; a request written by another connection is seen within a second or two; a window's end is
sealed on time with no request at all. Oracle: the SQL the agent's own connection runs (SQLite's
trace callback) and the records in the chain, read with plain SQL."""

from __future__ import annotations

import json
import sqlite3
import time
import zlib

from agent.buffer import Buffer
from agent.buffer.maintenance import TECHNICIAN
from agent.runtime.agent import Agent
from tests.helpers.station import analyzer_device, http_transport, make_config, wait_for


def _maintenance_events(path) -> list[str]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        rows = db.execute("SELECT payload FROM batches WHERE kind = 'maintenance' ORDER BY seq")
        return [json.loads(zlib.decompress(p))["body"]["event"] for (p,) in rows]
    finally:
        db.close()


def test_an_idle_agent_reads_one_counter_and_sees_requests_and_ends_on_time(
    tmp_path, station_id, station_key, steady_analyzer, warehouse
):
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(steady_analyzer.port)],
        [http_transport(warehouse.start_http())],
    )
    agent = Agent(config)
    reads: list[str] = []
    agent.buffer.file._conn.set_trace_callback(
        lambda sql: ("FROM maintenance" in sql or "rotate_key" in sql) and reads.append(sql)
    )
    agent.start()
    try:
        checks = wait_for(lambda: agent.housekeeping.checks >= 2 and agent.housekeeping.checks)
        before = len(reads)
        wait_for(lambda: agent.housekeeping.checks >= checks + 3, 30, "three more checks")
        assert reads[before:] == [], "an idle agent read the requests themselves every second"

        # Another process (a connection of its own, as the CLI) opens a window ending soon.
        cli = Buffer(tmp_path / "buffer.db")
        now = int(time.time() * 1000)
        cli.maintenance.open_window(
            TECHNICIAN, "stack-analyzer", None, now, until_ms=now + 4000, technician="Lan"
        )
        cli.close()
        wait_for(lambda: agent.maintenance.active(), 10, "the window seen by the agent")
        # Its end comes with no request written: its record is sealed on time all the same.
        wait_for(lambda: _maintenance_events(tmp_path / "buffer.db") == ["start", "expire"], 15)
    finally:
        agent.stop()


def test_the_looks_ride_on_the_polls_commits_once_a_second(
    tmp_path, station_id, station_key, steady_analyzer, warehouse
):
    """Polls every 0.5 s: the looks run right after the commit of the poll at each whole
    second (their tick, at .35, is near), not on a wake-up of their own, and once a second."""
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(steady_analyzer.port, poll=0.5)],
        [http_transport(warehouse.start_http())],
    )
    agent = Agent(config)
    looks: list[float] = []
    look = agent.housekeeping.run
    agent.housekeeping.run = lambda: (looks.append(time.time()), look())  # type: ignore[method-assign]
    agent.start()
    try:
        wait_for(lambda: len(looks) >= 10, 30, "ten looks")
    finally:
        agent.stop()
    steady = looks[2:10]
    after_second = sorted(t % 1.0 for t in steady)
    # A look on its own tick starts at .35; one riding on the commit of the poll at :00,
    # a few milliseconds after it (the median: a loaded machine may delay one or two).
    assert after_second[len(after_second) // 2] < 0.2, after_second
    spacing = [b - a for a, b in zip(steady, steady[1:], strict=False)]
    assert all(0.5 < s < 1.6 for s in spacing), spacing  # once a second, not once a commit
