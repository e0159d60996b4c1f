"""The agent's timed duties, each on a thread of its own: the housekeeping and health-record looks
(every second, one thread for both: ``in_turn``), sealing, pruning and a listening device's
retries.

The housekeeping look runs every second for the life of the process, so what a run costs around
the duty itself is paid 86,400 times a day: an APScheduler job run cost ~0.3 ms of CPU (the
scheduler thread computed the next fire time and submitted to its pool, a pool thread ran the
job and reported back), a thread waking from ``Event.wait`` about a third of that; and the
scheduler's import and its two threads cost ~1.4 MiB of idle RSS (bench/RESULTS.md, issue 17).
The polls keep their own clock, where no slot passes unrecorded (``agent.poll.poll_clock``); the
health report rides on its wake-ups, which never wait for the buffer, where these duties may.

A tick falls at whole multiples of the interval since the epoch plus ``PHASE_S``, off the poll
grid. A duty may also be *nudged* between ticks (``nudge``): its thread then runs the duty's
``nudged`` function at once (the seal: full batches as they fill, see ``agent.runtime.seal_desk``).
A duty may also ride on a wake-up another thread already paid for (``ride``: the polls' commit):
when its tick is at most ``ride_s`` away, its thread runs the tick at once, woken by that thread
rather than by its own timer, which on a small VM costs about half as much (bench/RESULTS.md,
session 14). A duty never runs twice at once (one thread); a run that overruns skips the ticks
it covered, and the next run takes whatever is due (a seal takes all that waits). A wait never
exceeds one interval, so a wall clock set back delays nothing.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping

from agent.support.logs import event
from agent.support.workers import Workers

log = logging.getLogger("agent")
# Off the grid where the polls of common intervals (0.1, 0.2, 0.25, 0.5, 1 s...) fall: a duty
# waking with a tick's polls makes them contend for the interpreter (bench/RESULTS.md).
PHASE_S = 0.35


def in_turn(duties: Mapping[str, Callable[[], object]]) -> Callable[[], None]:
    """One run of several duties of the same interval, in order, on one thread: one wake-up
    for all of them (a thread's wake-up costs ~0.1 ms of CPU on a small machine: paid 86,400
    times a day per thread at 1 s). A duty that fails is logged under its own name and the
    next still runs."""

    def run() -> None:
        for name, fn in duties.items():
            _run_logged(name, fn)

    return run


def _run_logged(name: str, fn: Callable[[], object]) -> None:
    try:
        fn()
    except Exception as exc:  # a duty's failure is logged; the next tick tries again
        event(log, logging.ERROR, "job_failed", job=name, error=repr(exc))


def next_tick(interval_s: float, now: float, phase_s: float = PHASE_S) -> float:
    """The first tick (wall-clock seconds) after ``now``."""
    tick = (math.floor((now - phase_s) / interval_s) + 1) * interval_s + phase_s
    return tick if tick > now else tick + interval_s  # ``now`` a hair below a whole multiple


class Ticker:
    """Runs ``fn()`` every ``interval_s`` on its own thread until ``stop``."""

    def __init__(
        self,
        name: str,
        interval_s: float,
        fn: Callable[[], object],
        workers: Workers,
        limit_s: float,
        wall: Callable[[], float] = time.time,
        *,
        nudged: Callable[[], object] | None = None,
        ride_s: float | None = None,
    ) -> None:
        """A run lasting over ``limit_s`` is stuck (``Workers``); ``wall()``: the wall clock;
        ``nudged``: what a ``nudge`` runs (on this thread, between ticks); ``ride_s``: how
        early a ``ride`` may run a tick (None: rides are ignored)."""
        self.name, self.interval_s, self._wall = name, interval_s, wall
        self.ride_s = ride_s
        self._next = math.inf  # the next tick (wall clock), as the thread last set it
        self._rode = False  # a ride is waiting for the thread
        self._run = workers.job(name, limit_s, fn)
        self.nudged = nudged
        self._run_nudged = workers.job(name, limit_s, nudged) if nudged is not None else None
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by stop(), nudge() and ride()
        self._nudged = threading.Event()  # a nudge is waiting for the thread
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def stopped(self) -> bool:
        """Told to stop (its thread ends, or has ended, on purpose)."""
        return self._stop.is_set()

    def nudge(self) -> None:
        """Run the ``nudged`` function on this duty's thread as soon as it is free (once for
        any number of nudges meanwhile); the ticks stay where they were."""
        if self._run_nudged is not None:
            self._nudged.set()
            self._wake.set()

    def ride(self) -> bool:
        """Another thread is awake anyway (the polls just committed): when the next tick is at
        most ``ride_s`` away, run it now on this duty's thread, rather than have the thread
        wake for it on its own later (a wake-up from a long sleep costs more CPU than one
        from another thread's: bench/RESULTS.md, session 14). The tick is then taken.
        Whether the thread was asked to run."""
        if self.ride_s is None or self._next - self._wall() > self.ride_s:
            return False
        self._rode = True
        self._wake.set()
        return True

    def stop(self, timeout_s: float = 10.0) -> None:
        """Start no more runs; wait for the one going on (unless called from that run)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        interval = self.interval_s
        tick = self._next = next_tick(interval, self._wall())
        while True:
            # At most one interval's wait: a wall clock set back does not hold the duty up.
            woken = self._wake.wait(min(interval, max(0.0, tick - self._wall())))
            if self._stop.is_set():
                return
            self._wake.clear()
            if woken and not self._rode_in_time(tick):
                if self._run_nudged is not None and self._nudged.is_set() and self._wall() < tick:
                    self._nudged.clear()
                    _run_logged(self.name, self._run_nudged)  # a nudge between ticks
                if self._wall() < tick:
                    continue
            self._nudged.clear()  # the tick's run covers a nudge waiting
            _run_logged(self.name, self._run)
            # Never the same tick twice (a wait may end a hair early), never a burst of the
            # ticks a long run covered.
            tick = self._next = max(tick + interval, next_tick(interval, self._wall()) - interval)

    def _rode_in_time(self, tick: float) -> bool:
        """A ride is waiting and ``tick`` is at most ``ride_s`` away (the ride is taken)."""
        rode, self._rode = self._rode, False
        return rode and self.ride_s is not None and tick - self._wall() <= self.ride_s
