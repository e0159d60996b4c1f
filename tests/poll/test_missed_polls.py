"""No silent holes: a poll that cannot start on time is stored as fault readings of its slot."""

from __future__ import annotations

import math
import sqlite3
import time

from agent.runtime.agent import Agent
from tests.helpers.station import analyzer_device, http_transport, make_config, wait_for

INTERVAL_MS = 200


def _holes_stored(tmp_path) -> int:
    """Poll slots stored as faults at the slot's exact time (a real poll is a bit later)."""
    db = sqlite3.connect(tmp_path / "buffer.db", timeout=30)
    try:
        return db.execute(
            "SELECT count(DISTINCT time_ms) FROM readings WHERE status = 2 AND time_ms % ? = 0",
            (INTERVAL_MS,),
        ).fetchone()[0]
    finally:
        db.close()


def test_polls_that_could_not_start_while_the_buffer_stalled_are_recorded(
    tmp_path, station_id, station_key, analyzer, warehouse
):
    """Another connection holds the buffer's write lock: the running poll hangs in its commit
    and the next slots cannot start. Each of those slots is stored, once the buffer moves
    again, as status-02 readings stamped with the slot's time, with the reason; counted."""
    port = warehouse.start_http()
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port, poll=INTERVAL_MS / 1000)],
        [http_transport(port)],
    )
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
            lambda: _holes_stored(tmp_path) >= agent.poller.missed_polls,
            30,
            "the missed slots stored by the next polls (not only at the stop)",
        )
        assert agent.health()["missed_polls"] == agent.poller.missed_polls
    finally:
        staller.close()
        agent.stop(grace_s=2)

    db = sqlite3.connect(tmp_path / "buffer.db")
    rows = db.execute(
        "SELECT r.time_ms, r.status FROM readings r JOIN channels c ON c.id = r.channel "
        "WHERE c.device = 'stack-analyzer'"
    ).fetchall()
    last_error = db.execute(
        "SELECT last_error FROM devices WHERE name = 'stack-analyzer'"
    ).fetchone()[0]
    db.close()
    # Every slot well inside the stall has readings: real ones or the recorded hole.
    first = math.ceil(stalled_from / INTERVAL_MS) + 2
    last = math.floor(stalled_to / INTERVAL_MS) - 2
    assert last - first >= 3
    slots = {t // INTERVAL_MS for t, _ in rows}
    missing = [s for s in range(first, last + 1) if s not in slots]
    assert missing == [], f"{len(missing)} slot(s) of the stall left no trace"
    holes = [t for t, status in rows if status == 2 and t % INTERVAL_MS == 0]
    assert len(holes) >= 8 * len(analyzer_device(0)["channels"]) // 2
    assert "poll skipped" in last_error


def test_slots_between_a_stopped_agent_and_its_successor_are_recorded(
    tmp_path, station_id, station_key, analyzer, warehouse
):
    """What a reload does, slowed down: the first agent stops, slots pass, the second starts
    and records the slots nobody polled."""
    port = warehouse.start_http()
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port, poll=INTERVAL_MS / 1000)],
        [http_transport(port)],
    )
    first = Agent(config)
    first.start()
    wait_for(lambda: first.poller.polled >= 5, 30, "some polls")
    first.stop(grace_s=1)
    before = first.next_polls()
    stopped_at = time.time() * 1000
    wait_for(lambda: time.time() * 1000 > stopped_at + 4 * INTERVAL_MS, 10, "slots passing")
    second = Agent(config)
    second.start()
    try:
        second.missed_since(before, "poll skipped: the configuration was being reloaded")
        assert second.poller.missed_polls >= 4
        wait_for(lambda: _holes_stored(tmp_path) >= second.poller.missed_polls, 30, "stored")
    finally:
        second.stop(grace_s=1)
    db = sqlite3.connect(tmp_path / "buffer.db")
    times = sorted(
        t // INTERVAL_MS
        for (t,) in db.execute(
            "SELECT DISTINCT r.time_ms FROM readings r JOIN channels c ON c.id = r.channel "
            "WHERE c.device = 'stack-analyzer'"
        )
    )
    db.close()
    assert [s for s in range(times[0], times[-1] + 1) if s not in set(times)] == []


def test_a_poll_slower_than_its_interval_runs_late_or_is_recorded_never_dropped(
    tmp_path, station_id, station_key, analyzer, warehouse
):
    """The device answers so slowly that a poll lasts longer than its interval: every slot of
    the schedule, from the first to the first never started, is either a poll (run late,
    stamped with its real time) or a counted hole (status 02 at the slot's time)."""
    analyzer.delay_s = 0.15  # per request: a poll lasts 0.3 s or more, its interval is 0.2 s
    port = warehouse.start_http()
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port, poll=INTERVAL_MS / 1000) | {"timeout_s": 1.0}],
        [http_transport(port)],
    )
    agent = Agent(config)
    agent.start()
    try:
        channels = len(analyzer_device(0)["channels"])
        wait_for(lambda: agent.poller.polled >= 15 * channels, 60, "15 slots stored")
    finally:
        agent.stop(grace_s=1)
    end_ms = int(agent.next_polls()["stack-analyzer"][1].timestamp() * 1000)
    db = sqlite3.connect(tmp_path / "buffer.db")
    times = db.execute(
        "SELECT DISTINCT r.time_ms, r.status = 2 AND r.time_ms % ? = 0 FROM readings r "
        "JOIN channels c ON c.id = r.channel WHERE c.device = 'stack-analyzer'",
        (INTERVAL_MS,),
    ).fetchall()
    db.close()
    polls = sorted(t for t, hole in times if not hole)
    holes = [t for t, hole in times if hole]
    first_ms = min(t for t, _h in times) // INTERVAL_MS * INTERVAL_MS
    slots = (end_ms - first_ms) // INTERVAL_MS
    assert len(polls) + len(holes) == slots, (len(polls), len(holes), slots)
    assert len(holes) == agent.poller.missed_polls > 0
    late = [t for t in polls if t % INTERVAL_MS > INTERVAL_MS // 4]
    assert late, "no poll ran late: the device was not slow enough to test anything"


def test_a_poll_that_raises_is_recorded_as_missed(tmp_path, analyzer):
    """A failure around the read (here the metrics hook raising) must not lose the slot: the
    poll clock records it as missed, with the error, and keeps polling."""
    from agent.buffer import Buffer
    from agent.poll.poll_clock import PollClock
    from agent.poll.poller import Poller
    from agent.support.clock import SystemClock
    from agent.support.workers import Workers
    from drivers import make_driver
    from drivers.modbus.tcp import ModbusTcpConfig

    poller = Poller(Buffer(tmp_path / "b.db"), SystemClock())
    calls = []

    def broken_hook(device: str, seconds: float) -> None:
        calls.append(device)
        raise RuntimeError("metrics hook broke")

    poller.on_poll = broken_hook
    driver = make_driver(ModbusTcpConfig.model_validate(analyzer_device(analyzer.port)))
    polls = PollClock(poller, SystemClock(), Workers(), helpers=2)
    polls.add(driver, INTERVAL_MS / 1000, 60)
    polls.start()
    try:
        wait_for(lambda: poller.missed_polls >= 3, 30, "failed polls recorded")
        assert polls.running, "the clock stopped polling after a failed poll"
    finally:
        polls.shutdown()
        driver.close()
    assert len(calls) >= 3
    assert all("metrics hook broke" in reason for _slot, reason in poller._holes["stack-analyzer"])
