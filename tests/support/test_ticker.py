"""The timed duties' own threads (``agent.support.ticker``): on the phase, never twice for one tick,
never a burst after an overrun, alive after a failure or a wall clock set back, ended by a run
of their own (a listening device's retry that succeeded)."""

from __future__ import annotations

import logging
import math
import threading
import time

from agent.support.ticker import PHASE_S, Ticker, in_turn, next_tick
from agent.support.workers import Workers
from tests.helpers.station import wait_for

INTERVAL_S = 0.2


class Runs:
    """A duty that records when (wall clock) each run started; ``hold(i)`` seconds for run i."""

    def __init__(self, hold: dict[int, float] | None = None, fail: set[int] | None = None):
        self.at: list[float] = []
        self._hold, self._fail = hold or {}, fail or set()
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            index = len(self.at)
            self.at.append(time.time())
        if index in self._fail:
            raise RuntimeError(f"run {index} failed")
        time.sleep(self._hold.get(index, 0.0))  # the duty's own length, not a synchronization

    def count(self) -> int:
        with self._lock:
            return len(self.at)


def ticker(fn, wall=time.time) -> Ticker:
    return Ticker("duty", INTERVAL_S, fn, Workers(), limit_s=60, wall=wall)


def run_until(fn, done, what: str) -> None:
    """Run ``fn`` on a ticker until ``done()``, then stop it."""
    t = ticker(fn)
    t.start()
    try:
        wait_for(done, 20, what)
    finally:
        t.stop()


def test_next_tick_is_the_next_phase_after_a_whole_multiple():
    # Brute force over a grid of instants: the tick is the least t > now with t = k*i + phase.
    for now in [i / 1000 for i in range(0, 3000, 7)]:
        tick = next_tick(INTERVAL_S, now)
        k = round((tick - PHASE_S) / INTERVAL_S)
        assert abs(tick - (k * INTERVAL_S + PHASE_S)) < 1e-9, now
        assert now < tick <= now + INTERVAL_S + 1e-9, now


def test_runs_fall_on_the_phase_once_per_tick():
    runs = Runs()
    run_until(runs, lambda: runs.count() >= 8, "eight runs")
    lateness = sorted((at - PHASE_S) % INTERVAL_S for at in runs.at)
    assert lateness[len(lateness) // 2] < 0.1, lateness  # the median run is on its tick
    # Each run belongs to the last tick at or before its start (5 ms: a wait may end a hair
    # early); a run late by less than an interval is still its own tick's.
    ticks = [math.floor((at - PHASE_S + 0.005) / INTERVAL_S) for at in runs.at]
    assert len(set(ticks)) == len(ticks), f"a tick ran twice: {ticks}"


def test_a_run_that_overruns_is_followed_by_one_run_not_a_burst():
    """Run 1 lasts five ticks: the ticks it covered give one run at once, then the grid."""
    runs = Runs(hold={1: 5 * INTERVAL_S})
    run_until(runs, lambda: runs.count() >= 5, "runs after the long one")
    after_long = [b - a for a, b in zip(runs.at[1:], runs.at[2:], strict=False)]
    # The run right after the long one starts as it ends; the next waits for its tick.
    assert after_long[0] >= 5 * INTERVAL_S - 0.02, runs.at
    # A burst would start the next run at once too (microseconds); the grid's next tick is
    # most of an interval away, less only what the catch-up run started late.
    assert after_long[1] > 0.15 * INTERVAL_S, f"a burst of catch-up runs: {after_long}"


def test_a_run_that_raises_is_logged_and_the_next_tick_runs(caplog):
    runs = Runs(fail={0, 1})
    t = ticker(runs)
    with caplog.at_level(logging.ERROR, logger="agent"):
        t.start()
        try:
            wait_for(lambda: runs.count() >= 4, 20, "runs after two failures")
            assert t.running
        finally:
            t.stop()
    failed = [r.fields for r in caplog.records if r.getMessage() == "job_failed"]
    assert len(failed) == 2, failed
    assert all(f["job"] == "duty" and "failed" in f["error"] for f in failed), failed


def test_a_wall_clock_set_back_a_day_does_not_stop_the_runs():
    offset = [0.0]
    runs = Runs()
    t = ticker(runs, wall=lambda: time.time() + offset[0])
    t.start()
    try:
        wait_for(lambda: runs.count() >= 2, 20, "runs before the step")
        offset[0] = -86_400.0
        before = runs.count()
        wait_for(lambda: runs.count() >= before + 5, 20, "runs after the wall clock went back")
    finally:
        t.stop()
    assert not t.running


def test_stop_waits_for_the_run_going_on():
    started, hold = threading.Event(), threading.Event()
    done: list[bool] = []

    def duty() -> None:
        started.set()
        hold.wait(5)
        done.append(True)

    t = ticker(duty)
    t.start()
    wait_for(started.is_set, 20, "a run to start")
    threading.Timer(0.3, hold.set).start()
    t.stop()
    assert done == [True] and not t.running


def test_a_run_may_end_its_own_ticker_and_is_its_last(caplog):
    """A listening device's retry stops its ticker once the device listens."""
    runs = Runs()
    holder: list[Ticker] = []

    def retry() -> None:
        runs()
        if runs.count() == 2:
            holder[0].stop()

    t = ticker(retry)
    holder.append(t)
    with caplog.at_level(logging.ERROR, logger="agent"):
        t.start()
        wait_for(lambda: not t.running, 20, "the ticker to end after its second run")
    assert runs.count() == 2
    assert not [r for r in caplog.records if r.getMessage() == "job_failed"], caplog.text


def test_duties_in_turn_share_one_thread_and_a_failing_one_does_not_stop_the_next(caplog):
    first, second = Runs(fail={0}), Runs()
    threads: set[int] = set()

    def on_thread(fn):
        def run():
            threads.add(threading.get_ident())
            fn()

        return run

    caplog.set_level(logging.ERROR)
    run_until(
        in_turn({"first": on_thread(first), "second": on_thread(second)}),
        lambda: second.count() >= 2,
        "two runs of the second duty",
    )
    assert first.count() >= 2  # its failure did not end the ticker
    assert len(threads) == 1  # one thread (one wake-up) for both
    failed = [r.fields for r in caplog.records if r.getMessage() == "job_failed"]
    assert [f["job"] for f in failed] == ["first"], failed


def test_a_nudge_runs_the_nudged_duty_between_ticks_once_and_the_ticks_stay():
    ticks, nudged = Runs(), Runs()
    t = Ticker("duty", 30.0, ticks, Workers(), limit_s=60, nudged=nudged)  # no tick in the test
    t.start()
    try:
        for expected in (1, 2, 3):
            t.nudge()
            wait_for(lambda n=expected: nudged.count() == n, 10, f"nudged run {expected}")
        assert ticks.count() == 0  # a nudge is not a tick
        threads: list[str] = []
        t._run_nudged = lambda: threads.append(threading.current_thread().name)  # noqa: SLF001
        t.nudge()
        wait_for(lambda: threads, 10, "the nudged run")
        assert threads == ["duty"]  # on the duty's own thread, never beside a tick's run
    finally:
        t.stop()
    assert not t.running


def test_many_nudges_during_a_run_make_one_more_run_and_a_duty_without_one_ignores_them():
    nudged, ended = Runs(hold={0: 0.5}), []
    t = Ticker("duty", 30.0, Runs(), Workers(), limit_s=60, nudged=lambda: ended.append(nudged()))
    t.start()
    try:
        t.nudge()
        wait_for(lambda: nudged.count() == 1, 10, "the first nudged run")
        for _ in range(50):
            t.nudge()  # during the first run's 0.5 s: one more run, not fifty
        wait_for(lambda: len(ended) == 2, 10, "the second nudged run, ended")
        assert nudged.count() == 2 and not t._wake.is_set()  # noqa: SLF001 (nothing pending)
    finally:
        t.stop()
    plain = Runs()
    t = ticker(plain)
    t.nudge()  # no nudged duty: nothing happens, not even a tick
    assert plain.count() == 0 and not t.running


def test_a_ride_runs_a_near_tick_at_once_and_takes_it_and_a_far_tick_waits():
    """Interval 30 s: no tick of its own comes during the test; the wall clock is the test's."""
    wall = [30_000.0 + PHASE_S - 10.0]  # the next tick 10 s away
    runs, threads = Runs(), []

    def duty() -> None:
        threads.append(threading.current_thread().name)
        runs()

    t = Ticker("duty", 30.0, duty, Workers(), limit_s=60, wall=lambda: wall[0], ride_s=15.0)
    t.start()
    try:
        wait_for(lambda: t._next < math.inf, 10, "the thread's first tick")  # noqa: SLF001
        assert t.ride()  # 10 s <= 15 s: the tick runs now
        wait_for(lambda: runs.count() == 1, 10, "the ridden tick")
        assert threads == ["duty"]  # on the duty's own thread
        wait_for(lambda: t._next == 30_030.0 + PHASE_S, 10, "the tick taken")  # noqa: SLF001
        assert not t.ride()  # the next tick is 40 s away
        wall[0] += 20.0
        assert not t.ride()  # 20 s away: too far
        wall[0] += 6.0
        assert t.ride()  # 14 s away: near enough
        wait_for(lambda: runs.count() == 2, 10, "the next ridden tick")
    finally:
        t.stop()
    assert runs.count() == 2, runs.at


def test_a_duty_without_ride_s_ignores_rides():
    runs = Runs()
    t = Ticker("duty", 30.0, runs, Workers(), limit_s=60)
    t.start()
    try:
        wait_for(lambda: t._next < math.inf, 10, "the thread's first tick")  # noqa: SLF001
        assert not t.ride() and runs.count() == 0
    finally:
        t.stop()
