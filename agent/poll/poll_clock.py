"""The polls' own clock: every device's poll slots, run by as few threads as keep them on time.

Each device is polled at whole multiples of its interval since the epoch (a 60 s poll at :00).
One thread keeps the slots. The polls due at a tick go into one queue; one worker takes them one
after another and commits them together (one transaction, one fsync for the tick). A device
slow to answer (or a tick of more polls than one worker gets through in time) does not hold up
the others: when the first poll waiting in the queue is ``STALL_S`` past its slot, one more
worker is woken (at most one per ``STALL_S``), up to ``helpers``.
Devices that answer at once thus cost no thread hand-off per poll (what a scheduler job per
poll cost: bench/RESULTS.md, "Issue 17, third pass"); slow ones are polled side by side.

A slot either runs — on time, or late, stamped with the time it really ran — or is handed to
the poller as missed (``Poller.missed``: counted, logged, sealed as a ``missed_polls`` record):

* a device has at most one poll running and one waiting behind it (``POLL_INSTANCES``); a slot
  due while both are taken is missed;
* a slot this clock reaches later than its grace (``max(1 s, interval)``: the process was busy
  or suspended) is missed;
* a poll that raises is recorded as missed, with the error.

The wall clock stepping (NTP setting a clock that was hours off, at boot on a station without a
battery-backed clock; an operator's correction) is not a run of missed slots: when the wall
clock moves more than ``STEP_MS`` apart from the monotonic one between two wake-ups, the slots
restart from the new time, logged (``clock_stepped``), none recorded as missed.

``next_polls``/``missed_since`` carry the slots over a reload.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.poll.poller import GATHER_S, Poller
from agent.support.clock import Clock
from agent.support.logs import event
from agent.support.workers import Workers
from drivers import Driver

log = logging.getLogger("agent.poll_clock")
POLL = "poll-"  # a device's poll, as the workers (stuck detection) name it: "poll-{device}"
POLL_INSTANCES = 2  # a device's poll running, and the next slot waiting to run late after it
STALL_S = 0.05  # no poll taken from the queue this long: wake one more worker
MAX_MISSED = 100_000  # slots recorded at once after a long suspend
STEP_MS = 1000  # the wall clock moved this much more (or less) than the monotonic one: a step


def aligned_start(interval_s: float, now: float | None = None) -> datetime:
    """The next instant that is a whole multiple of ``interval_s`` since the epoch."""
    now = time.time() if now is None else now
    return datetime.fromtimestamp(math.ceil(now / interval_s) * interval_s, tz=UTC)


def _first_slot_ms(interval_ms: int, now_ms: int) -> int:
    """The first slot at or after ``now_ms`` (``aligned_start``, in ms)."""
    return int(aligned_start(interval_ms / 1000, now_ms / 1000).timestamp() * 1000)


def _slots_between(
    before: dict[str, tuple[float, datetime]], after: dict[str, tuple[float, datetime]]
) -> dict[str, list[datetime]]:
    """Per device polled at the same interval by both: the slots from ``before``'s first slot
    not started up to ``after``'s (at most ``MAX_MISSED``); devices with none left out."""
    out: dict[str, list[datetime]] = {}
    for name, (interval, first) in after.items():
        if before.get(name, (None,))[0] != interval:
            continue
        slots: list[datetime] = []
        slot = before[name][1]
        while slot < first and len(slots) < MAX_MISSED:
            slots.append(slot)
            slot += timedelta(seconds=interval)
        if slots:
            out[name] = slots
    return out


def _join(threads: list[threading.Thread], deadline: float | None) -> None:
    """Wait for ``threads`` (until ``deadline``, monotonic); one still running is logged."""
    for thread in threads:
        thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if thread.is_alive():  # a device read still going on (a daemon thread)
            event(log, logging.WARNING, "poll_thread_not_ended", thread=thread.name)


class _StepWatch:
    """Notices the wall clock stepping between two wake-ups: more than ``STEP_MS`` apart from
    the monotonic clock's advance."""

    def __init__(self) -> None:
        self._last: tuple[int, float] | None = None  # (wall ms, monotonic s)

    def step_ms(self, now_ms: int, mono: float) -> int | None:
        """The step since the last call, or None when the clocks kept together."""
        last, self._last = self._last, (now_ms, mono)
        if last is None:
            return None
        step_ms = (now_ms - last[0]) - round((mono - last[1]) * 1000)
        return step_ms if abs(step_ms) > STEP_MS else None


@dataclass(eq=False)
class _Device:
    driver: Driver
    interval_ms: int
    grace_ms: int
    next_ms: int  # the first slot not yet queued or recorded missed (wall clock, ms)
    run: Callable[..., Any]  # the poll, as the workers see it
    pending: int = 0  # polls queued or running

    def take_due(self, now_ms: int) -> tuple[list[int], list[float], list[float]]:
        """Move past every slot due at ``now_ms``: (slots to poll, counted as pending; slots
        past their grace; slots while ``POLL_INSTANCES`` polls are pending)."""
        due: list[int] = []
        late: list[float] = []
        busy: list[float] = []
        while self.next_ms <= now_ms:
            slot = self.next_ms
            self.next_ms += self.interval_ms
            if now_ms - slot > self.grace_ms:
                if len(late) < MAX_MISSED:
                    late.append(slot)
            elif self.pending >= POLL_INSTANCES:
                busy.append(slot)
            else:
                self.pending += 1
                due.append(slot)
        return due, late, busy


class PollClock:
    """Polls every added device on its slots with up to ``helpers`` worker threads."""

    def __init__(
        self,
        poller: Poller,
        clock: Clock,
        workers: Workers,
        helpers: int,
        stall_s: float = STALL_S,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        beat: Callable[[], None] | None = None,
        beat_s: float = 1.0,
    ) -> None:
        """``wall_ms``: the wall clock the slots are aligned to (ms since the epoch);
        ``beat()``: called on the clock's thread about every ``beat_s``, riding on the polls'
        wake-ups when they fall within a quarter of it (the health report: it must never
        block, and it stops when the clock does)."""
        self._beat, self.beat_s = beat, beat_s
        self._next_beat = 0.0  # monotonic: the first wake-up beats
        self.poller, self.clock, self.workers, self.wall_ms = poller, clock, workers, wall_ms
        self._steps = _StepWatch()
        self.helpers, self.stall_s = max(1, helpers), stall_s
        self._devices: dict[str, _Device] = {}
        self._queue: deque[tuple[_Device, int]] = deque()
        self._lock = threading.Lock()  # guards the devices, the queue and the workers' state
        self._cond = threading.Condition(self._lock)  # the clock's wake-up
        self._threads: list[threading.Thread] = []
        # The wake-ups of the workers waiting for work, the last to finish last: it is woken
        # first (its memory is still in the CPU's caches, and the others stay asleep).
        self._idle: list[threading.Condition] = []
        self._notified = 0  # idle workers woken that have not yet taken the lock again
        self._woken_at = 0.0  # when a worker was last woken (monotonic)
        self._stopping = False
        self._clock_thread: threading.Thread | None = None
        self._final: dict[str, tuple[float, datetime]] | None = None

    def add(
        self, driver: Driver, interval_s: float, limit_s: float, first_ms: int | None = None
    ) -> None:
        """Poll ``driver`` every ``interval_s`` from its next aligned slot (or ``first_ms``,
        the slot ``remove`` left off at: a reload skips none); one poll lasting over
        ``limit_s`` is stuck."""
        interval_ms = max(1, round(interval_s * 1000))
        device = _Device(
            driver,
            interval_ms,
            max(1000, int(interval_s) * 1000),
            _first_slot_ms(interval_ms, self.wall_ms()) if first_ms is None else first_ms,
            self.workers.job(POLL + driver.name, limit_s, self.poller.poll),
        )
        with self._cond:
            self._devices[driver.name] = device
            self._cond.notify_all()

    def remove(self, name: str, timeout_s: float = 10.0) -> tuple[float, int] | None:
        """Queue no more polls of device ``name``, wait (up to ``timeout_s``) for those queued
        or running to be committed; its (interval s, first slot not queued), None if unknown."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            device = self._devices.pop(name, None)
            if device is None:
                return None
            while device.pending and time.monotonic() < deadline:
                self._cond.wait(0.01)  # the workers' commits lower ``pending``
            return device.interval_ms / 1000, device.next_ms

    def start(self) -> None:
        self._clock_thread = threading.Thread(
            target=self._keep_time, name="poll-clock", daemon=True
        )
        self._clock_thread.start()

    @property
    def running(self) -> bool:
        thread = self._clock_thread
        return thread is not None and thread.is_alive() and not self._stopping

    def shutdown(self, deadline: float | None = None) -> None:
        """Queue nothing more, note each device's first slot not queued, let the workers finish
        the polls queued and commit them (until ``deadline``, monotonic: ``Poller.stop_by``)."""
        if deadline is not None:
            self.poller.stop_by(deadline)
        with self._cond:
            if self._final is None:
                self._final = self.next_polls()
            self._stopping = True
            self._cond.notify_all()
            while self._idle:
                self._notified += 1
                self._idle.pop().notify()
        _join([t for t in (self._clock_thread, *self._threads) if t is not None], deadline)

    def next_polls(self) -> dict[str, tuple[float, datetime]]:
        """Each polled device's (interval, first slot not yet started); after ``shutdown``,
        the first slot this clock never started."""
        if self._final is not None:
            return self._final
        return {
            name: (d.interval_ms / 1000, datetime.fromtimestamp(d.next_ms / 1000, tz=UTC))
            for name, d in list(self._devices.items())
        }

    def missed_since(self, before: dict[str, tuple[float, datetime]], reason: str) -> None:
        """Record as holes the slots between another clock's ``next_polls`` (shut down) and
        this one's first poll, for the devices both poll at the same interval (a reload)."""
        for name, slots in _slots_between(before, self.next_polls()).items():
            ms = [s.timestamp() * 1000 for s in slots]
            self.poller.missed(name, self._in_agent_clock(ms), reason)

    # -- the clock thread ------------------------------------------------------------------

    def _keep_time(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                missed = self._queue_due(self._wall_now())
                beat = self._beat if self._beat_due() else None
                if not missed and beat is None:
                    self._cond.wait(self._wait_s())
                    continue
            if beat is not None:
                beat()
            for name, slots, reason in missed:
                self.poller.missed(name, self._in_agent_clock(slots), reason)

    def _beat_due(self) -> bool:
        """Is a beat due (or a quarter of ``beat_s`` away: it rides on this wake-up)?"""
        if self._beat is None:
            return False
        now = time.monotonic()
        if now < self._next_beat - self.beat_s / 4:
            return False
        self._next_beat = now + self.beat_s
        return True

    def _wall_now(self) -> int:
        """The wall clock now; when it stepped since the last wake-up, every device's slots
        restart from it (under the lock)."""
        now_ms = self.wall_ms()
        step_ms = self._steps.step_ms(now_ms, time.monotonic())
        if step_ms is not None:
            for device in self._devices.values():
                device.next_ms = _first_slot_ms(device.interval_ms, now_ms)
            event(log, logging.WARNING, "clock_stepped", step_ms=step_ms)
        return now_ms

    def _queue_due(self, now_ms: int) -> list[tuple[str, list[float], str]]:
        """Queue the slots that are due (under the lock); the slots missed, by device."""
        missed = []
        for device in self._devices.values():
            if device.next_ms > now_ms:
                continue
            due, late, busy = device.take_due(now_ms)
            self._queue.extend((device, slot) for slot in due)
            name = device.driver.name
            if late:
                reason = "poll skipped: the agent could not start it on time (busy or suspended)"
                missed.append((name, late, reason))
            if busy:
                reason = "poll skipped: the previous polls of this device were still running"
                missed.append((name, busy, reason))
        if self._queue and (len(self._idle) == len(self._threads) or self._stall_s(now_ms) <= 0):
            self._wake_worker()  # every worker waiting for work, or the queue stalled
        return missed

    def _wake_worker(self) -> None:
        """One more worker on the queue: an idle one, or a new one while under ``helpers``."""
        self._woken_at = time.monotonic()  # give it ``stall_s`` before waking another
        if self._idle:
            self._notified += 1
            self._idle.pop().notify()
        elif len(self._threads) < self.helpers:
            thread = threading.Thread(
                target=self._work, name=f"poll-{len(self._threads) + 1}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _stall_s(self, now_ms: int) -> float:
        """How long until the queue counts as stalled (<= 0: it does): its first poll
        ``stall_s`` past its slot, and ``stall_s`` since a worker was last woken."""
        head_s = (self._queue[0][1] - now_ms) / 1000 + self.stall_s
        return max(head_s, self._woken_at + self.stall_s - time.monotonic())

    def _wait_s(self) -> float:
        """How long the clock may sleep: until the next slot, or the next stall check."""
        now_ms = self.wall_ms()
        first = min((d.next_ms for d in self._devices.values()), default=None)
        wait = 3600.0 if first is None else max(0.0, (first - now_ms) / 1000)
        # A stall check, unless each poll queued has a woken worker of its own on the way: it
        # needs only the lock (which another helper would need too), not a device. A tick of
        # one poll thus wakes this thread once, not again ``stall_s`` later.
        if len(self._queue) > self._notified:
            wait = min(wait, max(0.001, self._stall_s(now_ms)))
        if self._beat is not None:
            wait = min(wait, max(0.0, self._next_beat - time.monotonic()))
        return wait

    def _in_agent_clock(self, slots_ms: list[float]) -> list[int]:
        """Wall-clock slot times in the agent's clock (rounded: the clocks are read µs apart)."""
        offset_ms = round((self.clock.now_ms() - self.wall_ms()) / 10) * 10
        return [int(t) + offset_ms for t in slots_ms]

    # -- the workers -----------------------------------------------------------------------

    def _work(self) -> None:
        """Take queued polls one after another; commit when the queue is empty (or, when it
        never is, every ``GATHER_S``). A poll counts as running until it is committed."""
        polled: list[_Device] = []  # polled by this worker, not yet committed
        first_polled = 0.0
        wake = threading.Condition(self._lock)
        while True:
            with self._cond:
                item = None
                if self._queue:
                    item = self._queue.popleft()
                elif not polled:
                    if self._stopping:
                        return
                    self._idle.append(wake)
                    wake.wait()  # whoever notifies takes it off the idle list
                    self._notified -= 1
                    continue
            if item is None:
                self._commit(polled)
                continue
            device, slot = item
            if not polled:
                first_polled = time.monotonic()
            polled.append(device)
            try:  # the slot in the agent's clock: a poll the buffer is behind for is missed
                device.run(device.driver, False, self._in_agent_clock([slot])[0])
            except Exception as exc:  # a bug around the read: the slot is recorded, not lost
                log.exception("poll of %s failed", device.driver.name)
                reason = f"poll failed: {exc!r}"
                self.poller.missed(device.driver.name, self._in_agent_clock([slot]), reason)
            if time.monotonic() - first_polled >= GATHER_S:
                self._commit(polled)

    def _commit(self, polled: list[_Device]) -> None:
        """Commit the polls waiting in memory; the devices of ``polled`` may be polled again."""
        self.poller.flush()
        with self._cond:
            for device in polled:
                device.pending -= 1
        polled.clear()
