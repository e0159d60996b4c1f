"""The poll clock: one worker for devices that answer at once, helpers for slow ones, and no
slot without a trace (agent.poll.poll_clock)."""

from __future__ import annotations

import sqlite3
import statistics
import threading
import time

import pytest

from agent.buffer import Buffer
from agent.poll.poll_clock import PollClock
from agent.poll.poller import Poller
from agent.support.clock import SystemClock
from agent.support.workers import Workers
from drivers import make_driver
from drivers.modbus.tcp import ModbusTcpConfig
from tests.helpers.station import analyzer_device, steady_analyzer_simulator, wait_for

INTERVAL_MS = 200


@pytest.fixture
def analyzers():
    """Five analyzer simulators that never calibrate (every reading 00)."""
    sims = [steady_analyzer_simulator() for _ in range(5)]
    for sim in sims:
        sim.start()
    yield sims
    for sim in sims:
        sim.stop()


def _driver(port: int, name: str, timeout_s: float = 0.3):
    device = analyzer_device(port, name=name, poll=INTERVAL_MS / 1000) | {"timeout_s": timeout_s}
    return make_driver(ModbusTcpConfig.model_validate(device))


def _clock(tmp_path, drivers, helpers: int) -> tuple[PollClock, Poller]:
    """A poll clock on a real poller and buffer; ``poller.reasons`` lists what it was told
    of missed slots: (device, slots, reason)."""
    poller = Poller(Buffer(tmp_path / "buffer.db"), SystemClock())
    poller.reasons = []
    missed = poller.missed

    def recording(device: str, slots_ms: list[int], reason: str) -> None:
        poller.reasons.append((device, len(slots_ms), reason))
        missed(device, slots_ms, reason)

    poller.missed = recording
    polls = PollClock(poller, SystemClock(), Workers(), helpers)
    for driver in drivers:
        polls.add(driver, INTERVAL_MS / 1000, 60)
    return polls, poller


def _query(tmp_path, sql: str, *args) -> list:
    db = sqlite3.connect(tmp_path / "buffer.db", timeout=30)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def _run(polls: PollClock, poller: Poller, drivers, until) -> None:
    polls.start()
    try:
        wait_for(until, 60, "enough polls")
    finally:
        polls.shutdown()
        for driver in drivers:
            driver.close()


def test_the_polls_of_a_tick_are_committed_together(tmp_path, analyzers):
    """Five devices that answer at once: their polls of a tick share one commit (one fsync),
    and every slot from the first to the last is polled (none missed)."""
    drivers = [_driver(sim.port, f"analyzer-{i}") for i, sim in enumerate(analyzers)]
    polls, poller = _clock(tmp_path, drivers, helpers=10)
    channels = len(drivers[0].channels)
    _run(polls, poller, drivers, lambda: poller.polled >= 20 * 5 * channels)
    assert poller.missed_polls == 0
    rows = _query(
        tmp_path,
        "SELECT c.device, count(DISTINCT r.time_ms / ?) FROM readings r "
        "JOIN channels c ON c.id = r.channel GROUP BY c.device",
        INTERVAL_MS,
    )
    assert len(rows) == 5 and len({n for _d, n in rows}) <= 2  # the same slots (±1 at the end)
    polls_made = poller.polled // channels
    assert polls_made / poller.commits >= 3, (polls_made, poller.commits)


def test_a_device_slow_to_answer_does_not_delay_the_others(tmp_path, analyzers):
    """One device takes 0.4 s per request (its polls last longer than its interval): the four
    others are still polled on time, every slot, by a helper woken when the queue stalls."""
    slow = analyzers[0]
    slow.delay_s = 0.4
    drivers = [_driver(slow.port, "slow", timeout_s=1.0)] + [
        _driver(sim.port, f"analyzer-{i}") for i, sim in enumerate(analyzers[1:])
    ]
    polls, poller = _clock(tmp_path, drivers, helpers=10)
    channels = len(drivers[0].channels)
    _run(
        polls,
        poller,
        drivers,
        lambda: poller.stored_by_device.get("analyzer-0", 0) >= 25 * channels,
    )
    rows = _query(
        tmp_path,
        "SELECT c.device, r.time_ms FROM readings r JOIN channels c ON c.id = r.channel "
        "WHERE c.device != 'slow' GROUP BY c.device, r.time_ms",
    )
    by_device: dict[str, list[int]] = {}
    for device, time_ms in rows:
        by_device.setdefault(device, []).append(time_ms)
    for device, times in by_device.items():
        times.sort()
        late = [t % INTERVAL_MS for t in times]
        assert statistics.median(late) < 100, (device, late)
        slots = (times[-1] - times[0]) // INTERVAL_MS + 1
        assert len(times) >= slots - 1, (device, len(times), slots)  # no slot skipped
    missed = {device for device, _n, _reason in poller.reasons}
    assert missed <= {"slow"}, poller.reasons  # only the slow device misses slots (recorded)


def test_slots_the_clock_reaches_after_their_grace_are_recorded_as_missed(tmp_path, analyzers):
    """The process is too busy to keep time for 1.6 s (here: the clock's lock is held): the
    slots more than a second overdue when it gets to them are recorded as missed with the
    reason, the others run late; the device is polled again afterwards."""
    driver = _driver(analyzers[0].port, "analyzer")
    polls, poller = _clock(tmp_path, [driver], helpers=2)
    channels = len(driver.channels)
    polls.start()
    try:
        wait_for(lambda: poller.polled >= 3 * channels, 30, "some polls")
        with polls._cond:
            threading.Event().wait(1.6)  # the process busy elsewhere: nothing moves
        wait_for(lambda: poller.missed_polls >= 2, 30, "the overdue slots recorded")
        before = poller.polled
        wait_for(lambda: poller.polled >= before + 3 * channels, 30, "polled again")
    finally:
        polls.shutdown()
        driver.close()
    late = [n for _d, n, reason in poller.reasons if "could not start it on time" in reason]
    assert sum(late) >= 2, poller.reasons
    holes = poller.take_missed()  # what the seal tick seals as missed_polls records
    assert len(holes["analyzer"]) == poller.missed_polls
    assert all(t % INTERVAL_MS == 0 for t, _ in holes["analyzer"])  # each at its slot's time
    faults = _query(tmp_path, "SELECT count(*) FROM readings WHERE status = 2")[0][0]
    assert faults == 0  # the device did nothing wrong: no fault reading


def test_a_wall_clock_step_restarts_the_slots_without_recording_any_missed(
    tmp_path, analyzers, caplog
):
    """NTP sets a clock that was two days behind (a station without a battery-backed clock,
    at boot), later an operator sets it back a day: the polls go on at the new time, no slot
    of the two days is recorded as missed (there were none in real time), and polling does not
    stop for the day the clock went back; each step is logged."""
    offset_ms = [0]
    driver = _driver(analyzers[0].port, "analyzer")
    poller = Poller(Buffer(tmp_path / "buffer.db"), SystemClock())
    polls = PollClock(
        poller,
        SystemClock(),
        Workers(),
        2,
        wall_ms=lambda: time.time_ns() // 1_000_000 + offset_ms[0],
    )
    polls.add(driver, INTERVAL_MS / 1000, 60)
    channels = len(driver.channels)
    polls.start()
    try:
        for step_ms in (2 * 86_400_000, -86_400_000):
            before = poller.polled
            wait_for(lambda: poller.polled >= before + 3 * channels, 30, "polls")  # noqa: B023
            offset_ms[0] += step_ms
            wait_for(lambda: poller.polled >= before + 8 * channels, 30, "polls after the step")  # noqa: B023
    finally:
        polls.shutdown()
        driver.close()
    assert poller.missed_polls == 0
    steps = [r for r in caplog.records if r.getMessage().startswith("clock_stepped")]
    assert len(steps) == 2, [r.getMessage() for r in caplog.records]


def test_the_clock_beats_about_every_beat_s_with_no_device_to_poll(tmp_path):
    """The health report rides on the clock's thread: with nothing to poll (a station of
    listening devices only) it still comes about every ``beat_s``."""
    beats: list[float] = []
    poller = Poller(Buffer(tmp_path / "b.db"), SystemClock())
    clock = PollClock(
        poller, SystemClock(), Workers(), 1, beat=lambda: beats.append(time.monotonic()), beat_s=0.1
    )
    clock.start()
    try:
        wait_for(lambda: len(beats) >= 10, 20, "ten beats")
    finally:
        clock.shutdown()
    gaps = sorted(b - a for a, b in zip(beats, beats[1:], strict=False))
    assert gaps[len(gaps) // 2] >= 0.07, gaps  # about every beat_s, not on every wake-up


def test_a_tick_of_one_poll_wakes_the_clock_once(tmp_path, analyzers):
    """A tick of one poll, handed to the idle worker, needs no stall check: the clock sleeps
    until the next slot, not ``stall_s`` later as well. (A station of one logger polled each
    second pays for every wake-up: bench/RESULTS.md, issue 17.) Counted as the clock's waits."""
    drivers = [_driver(analyzers[0].port, "analyzer")]
    polls, poller = _clock(tmp_path, drivers, helpers=10)
    waits: list[float | None] = []
    wait = polls._cond.wait

    def recording(timeout: float | None = None) -> bool:
        waits.append(timeout)
        return wait(timeout)

    polls._cond.wait = recording  # type: ignore[method-assign]
    channels = len(drivers[0].channels)
    _run(polls, poller, drivers, lambda: poller.polled >= 20 * channels)
    made = poller.polled // channels
    assert poller.missed_polls == 0
    # One wait per tick, plus the first slot's and the first tick's (its worker is new).
    assert len(waits) <= made * 1.3 + 3, (made, waits)
