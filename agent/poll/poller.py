"""Polling one device: read it, turn failures into fault readings, commit them at once.

A poll is done only when its readings are committed to the buffer. Polls of several devices
finishing together share one commit (a *group commit*: the polls that arrive while a commit
runs are all stored by the next one, in one transaction, fsynced with ``durability =
"power"``), and each ``accept`` returns only once its own readings are in a committed
transaction. If the buffer cannot take them (disk full, cap reached), they wait in a bounded
queue in memory and are stored first at the next poll; the condition is logged on every poll
until it clears.

Bounds, so that a buffer falling behind or refusing (a full disk, the ``max_disk_mb`` cap, a
drain on a busy machine) cannot turn into a spiral of ever larger commits, each retried in full
on every poll (bench/RESULTS.md, "The commit spiral"):

* **per commit**: a commit stores whole polls, oldest first, at most ``CHUNK_READINGS``
  readings per transaction (a larger poll alone); the polls beyond go in the next transaction
  at once. Each commit's cost and latency are bounded, and so is a retry against a full buffer.
* **in memory**: while ``MAX_WAITING_READINGS`` or more readings wait, a poll slot is not read:
  ``poll`` records it as missed (``BEHIND``), as any hole below, instead of reading a device
  whose readings could only queue. Counted in readings, not polls (a poll may hold 50 or
  5,000); the polls being read when the bound is reached still add theirs. Readings pushed by
  a listening device (``accept``) cannot be refused: they queue; past
  ``MAX_UNSTORED_READINGS`` or ``MAX_UNSTORED_POLLS`` the oldest waiting poll is dropped
  (``dropped``, logged) -- only a buffer refusing for long, with a pushing device, gets there.
* **holes**: kept as runs (``agent.poll.holes``): a buffer refusing for hours, which cannot
  seal them either, keeps one entry per device and reason, not one per slot.
* **at stop**: after ``stop_by(deadline)`` no chunk is begun past the deadline (each is
  bounded), so a stop with a backlog ends; what was not stored is the caller's to log.

A poll whose slot comes while the device's previous poll is still running waits for it and
runs late, stamped with the time it really ran (``poll`` holds a lock per device). A poll that
could not start at all (two before it still running, the process busy) is a
*hole*: ``missed`` records it at once (counted, logged), and the seal tick takes the holes
(``take_missed``) and seals them as ``missed_polls`` records (``agent.records.missed_polls``):
the agent's own failure, never a fault reading (``02``) of a device that did nothing wrong. No
slot of the schedule passes unrecorded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from agent.buffer import Buffer
from agent.poll.holes import Holes
from agent.support.clock import Clock
from agent.support.clock_sync import clock_synchronized
from agent.support.logs import Repeats, event
from core.errors import DeviceError, StorageError
from core.reading import FAULT, Reading
from drivers import Driver

log = logging.getLogger("agent.poller")
CHUNK_READINGS = 5_000  # readings per commit transaction at most (~5 ms of CPU: bench/RESULTS.md)
MAX_WAITING_READINGS = 50_000  # this many waiting: new poll slots are missed, not read
MAX_UNSTORED_READINGS = 200_000  # hard cap (pushed readings): the oldest waiting poll dropped
MAX_UNSTORED_POLLS = 10_000
# A poll waiting to be stored: (ticket, device, readings, error, time_ms, unsynced).
_Waiting = tuple[int, str, list[Reading], str | None, int, bool]
BEHIND = (
    f"poll skipped: {MAX_WAITING_READINGS:,} readings or more wait to be stored (the buffer is "
    "behind or full)"
)
GATHER_S = 0.05  # how long a commit waits for the polls still reading (one commit per tick)


class Poller:
    """Polls devices into the buffer; one instance serves every device of the agent."""

    def __init__(
        self,
        buffer: Buffer,
        clock: Clock,
        synchronized: Callable[[], bool | None] = clock_synchronized,
    ) -> None:
        """``synchronized()``: is the clock that stamps readings synchronized? (None: cannot
        tell.) Readings accepted while it answers False are stored flagged ``unsynced``."""
        self.buffer, self.clock, self.synchronized = buffer, clock, synchronized
        # Polls waiting to be committed, oldest first, each with its ticket (1, 2, ...).
        self._unstored: deque[_Waiting] = deque()
        self._waiting_readings = 0  # readings in ``_unstored``
        self._stop_at: float | None = None  # monotonic: commits give up past it (a stop)
        self._lock = threading.Lock()  # the queue and its tickets: held a moment, never to store
        self._commit_lock = threading.Lock()  # one group commit at a time
        self._reads = threading.Condition(self._lock)  # a read ended (notified)
        self._reads_started = 0  # reads started so far (each read's number)
        self._reading: set[int] = set()  # the numbers of the reads going on now
        self.commits = 0  # group commits made (polls / commits: how well they are shared)
        self._queued = 0  # tickets given out
        self._settled = 0  # every ticket up to this one is stored (or was dropped)
        self.polled = 0
        self.dropped = 0
        self.missed_polls = 0
        self._holes = Holes()  # the slots missed, not sealed yet
        self._missed_since_poll: dict[str, bool] = {}  # devices with holes since their last poll
        self._holes_lock = threading.Lock()  # never held while storing
        self.storage_error: str | None = None
        self._repeats = Repeats(log)
        self.read_by_device: dict[str, int] = {}  # readings produced, by device (metrics)
        self.stored_by_device: dict[str, int] = {}  # readings committed, by device
        self.last: dict[str, tuple[list[Reading], str | None, int]] = {}  # the live view
        # The live view, channel by channel: a datalogger's hourly packet must not hide its
        # real-time values (each packet holds only some of the device's channels).
        self.latest: dict[str, dict[tuple[str, str], Reading]] = {}
        self.states = StateMarks()  # moves when a device's state may have
        self.on_poll: Callable[[str, float], None] | None = None  # (device, seconds)
        self.on_stored: Callable[[], object] = lambda: None  # after each chunk is committed
        # after each read, before its readings are stored (a device may state a new identity)
        self.after_read: Callable[[Driver], None] | None = None
        # (device, readings) -> readings with the status windows give
        # (agent.records.maintenance.watch)
        self.status_filter: Callable[[str, list[Reading]], list[Reading]] | None = None
        self._device_locks: dict[str, threading.Lock] = {}

    def read(self, driver: Driver) -> tuple[list[Reading], str | None, int]:
        """Read one device now: (readings, error or None, time_ms). Never raises."""
        time_ms = self.clock.now_ms()
        try:
            readings = driver.read(time_ms)
        except DeviceError as exc:
            return _fault_readings(driver, time_ms, str(exc)), str(exc), time_ms
        except Exception as exc:  # a driver bug must not stop the station: record it as a fault
            log.exception("driver %s crashed", driver.name)
            message = f"device {driver.name!r}: driver error {type(exc).__name__}: {exc}"
            return _fault_readings(driver, time_ms, message), message, time_ms
        errors = [f"{r.param}: {r.error}" for r in readings if r.error]
        return readings, ("; ".join(errors) or None), time_ms

    def poll(self, driver: Driver, commit: bool = True, slot_ms: int | None = None) -> bool:
        """Read one device and commit its readings (see the module docstring on failure); a
        poll of a device whose previous poll is still running waits for it, then runs. With
        ``commit`` False the readings wait for the caller's ``flush`` (the poll clock commits
        the polls of a tick together). While the buffer is behind (``MAX_WAITING_READINGS``)
        the device is not read and the slot (``slot_ms``, default now) is recorded as missed:
        returns False then, True when the device was read."""
        lock = self._device_locks.get(driver.name)
        if lock is None:
            lock = self._device_locks.setdefault(driver.name, threading.Lock())
        with lock:
            if self._waiting_readings >= MAX_WAITING_READINGS:
                slot = self.clock.now_ms() if slot_ms is None else slot_ms
                self.missed(driver.name, [slot], BEHIND)
                return False
            with self._holes_lock:
                missed = self._missed_since_poll.pop(driver.name, False)
            if not missed:
                self._repeats.ok(f"missed:{driver.name}", "polls_on_time_again", device=driver.name)
            started = time.monotonic()
            with self._lock:
                self._reads_started += 1
                number = self._reads_started
                self._reading.add(number)
            try:
                readings, error, time_ms = self.read(driver)
            finally:
                with self._lock:
                    self._reading.discard(number)
                    self._reads.notify_all()
            if self.on_poll is not None:  # metrics: how long the device took to answer
                self.on_poll(driver.name, time.monotonic() - started)
            if self.after_read is not None:
                self.after_read(driver)
            self.accept(driver.name, readings, error, time_ms, commit=commit)
        return True

    def missed(self, device: str, slots_ms: list[int], reason: str) -> None:
        """Polls of ``device`` due at ``slots_ms`` did not run: record them (never blocks)."""
        with self._holes_lock:
            self._holes.add(device, slots_ms, reason)
            self._missed_since_poll[device] = True
            self.missed_polls += len(slots_ms)
        self._repeats.failed(
            f"missed:{device}",
            logging.WARNING,
            "poll_missed",
            reason,
            device=device,
            slots=len(slots_ms),
        )

    def take_missed(self) -> dict[str, list[tuple[int, str]]]:
        """The holes recorded so far, by device: (slot ms, reason); forgotten here (to be
        sealed; ``give_back_missed`` if that fails)."""
        with self._holes_lock:
            return self._holes.take()

    def give_back_missed(self, holes: dict[str, list[tuple[int, str]]]) -> None:
        """Holes ``take_missed`` gave that could not be sealed: kept for the next try."""
        with self._holes_lock:
            self._holes.put_back(holes)

    def accept(
        self,
        device: str,
        readings: list[Reading],
        error: str | None = None,
        time_ms: int = 0,
        *,
        commit: bool = True,
    ) -> None:
        """Commit readings a device produced (polled, or pushed by a listening driver); returns
        when they are stored, or queued in memory if the buffer cannot take them now (or, with
        ``commit`` False, until the next commit)."""
        if not readings:
            return
        time_ms = time_ms or max(r.time_ms for r in readings)
        unsynced = self.synchronized() is False
        # The live view shows the statuses maintenance windows give; the buffer stores the
        # device's own and labels them itself, in the storing transaction (agent.buffer).
        shown = readings if self.status_filter is None else self.status_filter(device, readings)
        self._observe(device, shown, error, time_ms)
        with self._lock:
            self._queued += 1
            ticket = self._queued
            self._unstored.append((ticket, device, readings, error, time_ms, unsynced))
            self._waiting_readings += len(readings)
            while len(self._unstored) > 1 and (
                len(self._unstored) > MAX_UNSTORED_POLLS
                or self._waiting_readings > MAX_UNSTORED_READINGS
            ):  # the oldest waiting poll falls out now: counted, and logged at the next commit
                oldest = self._unstored.popleft()
                self._waiting_readings -= len(oldest[2])
                self.dropped += 1
                self._settled = max(self._settled, oldest[0])
        if commit:
            self._commit(ticket)

    def _observe(
        self, device: str, readings: list[Reading], error: str | None, time_ms: int
    ) -> None:
        """What the device answered: its state in the log, the live view, the counters."""
        if error:
            self._repeats.failed(device, logging.WARNING, "device_error", error, device=device)
        else:
            self._repeats.ok(device, "device_recovered", device=device)
        if log.isEnabledFor(logging.DEBUG):
            event(log, logging.DEBUG, "poll_values", device=device, values=_values(readings))
        self.last[device] = (readings, error, time_ms)
        latest = self.latest.setdefault(device, {})
        for r in readings:
            latest[(r.param, r.unit)] = r
        self.read_by_device[device] = self.read_by_device.get(device, 0) + len(readings)
        self.states.see(device, readings, error)

    def _commit(self, ticket: int | None) -> None:
        """Store the waiting polls, oldest first, in transactions of at most
        ``CHUNK_READINGS`` readings, until the poll holding ``ticket`` (None: every poll
        waiting now) is stored -- unless a commit that ran meanwhile stored it, the buffer
        refuses (they stay waiting), or the stop's deadline (``stop_by``) has passed."""
        with self._commit_lock:
            with self._lock:
                target = self._queued if ticket is None else ticket
                if self._settled >= target:
                    return
                # Polls of one tick finish within milliseconds: wait (briefly) for the reads
                # going on now, so that the tick takes one commit (one fsync), not one per device.
                if self._reading:
                    mark = self._reads_started
                    self._reads.wait_for(
                        lambda: not self._reading or min(self._reading) > mark, GATHER_S
                    )
            while not _past(self._stop_at) and self._store_chunk() and self._settled < target:
                pass

    def _store_chunk(self) -> bool:
        """Store the oldest waiting polls, up to ``CHUNK_READINGS`` readings (at least one
        poll), in one transaction; False if none was waiting or the buffer refused them."""
        with self._lock:
            group = _chunk(self._unstored, CHUNK_READINGS)
        if not group:
            return False
        try:
            self.buffer.store_polls([entry[1:] for entry in group])
        except StorageError as exc:
            self.storage_error = str(exc)
            self._repeats.failed(
                "buffer",
                logging.ERROR,
                "readings_not_stored",
                str(exc),
                waiting_polls=len(self._unstored),
                waiting_readings=self._waiting_readings,
                dropped_polls=self.dropped,
            )
            return False
        self.commits += 1
        last = group[-1][0]
        with self._lock:
            while self._unstored and self._unstored[0][0] <= last:
                self._waiting_readings -= len(self._unstored.popleft()[2])
            self._settled = max(self._settled, last)
        for _n, device, readings, _e, _t, _u in group:
            self.polled += len(readings)
            self.stored_by_device[device] = self.stored_by_device.get(device, 0) + len(readings)
        if self.storage_error:
            self._repeats.ok("buffer", "buffer_writable_again")
            self.storage_error = None
        self.on_stored()
        return True

    def stop_by(self, deadline: float) -> None:
        """A stop: no chunk is begun after ``deadline`` (monotonic; one begun before it ends);
        what is still waiting then is the caller's to report (``waiting_readings``)."""
        self._stop_at = deadline

    def flush(self) -> None:
        """Store every poll waiting in memory now (in chunks; see ``_commit``)."""
        self._commit(None)

    def waiting(self) -> int:
        """Polls waiting in memory to be stored."""
        return len(self._unstored)

    def waiting_readings(self) -> int:
        """Readings waiting in memory to be stored."""
        return self._waiting_readings


class StateMarks:
    """``version`` moves when a device's error or the set of its channels not measuring (status
    other than 00, or a reading error) changes: what a health change record follows, known
    without reading the buffer (``agent.runtime.health_records`` looks when it moves)."""

    def __init__(self) -> None:
        self.version = 0
        self._marks: dict[str, tuple[str | None, tuple[tuple[str, str], ...]]] = {}

    def see(self, device: str, readings: list[Reading], error: str | None) -> None:
        """A poll's readings and error: ``version`` moves if they change the device's state."""
        mark = (error, tuple((r.param, r.status) for r in readings if r.status != "00" or r.error))
        if self._marks.get(device) != mark:
            self._marks[device] = mark
            self.version += 1


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _chunk(unstored: deque[_Waiting], most: int) -> list[_Waiting]:
    """The oldest waiting polls holding at most ``most`` readings (at least one poll)."""
    group: list[_Waiting] = []
    total = 0
    for entry in unstored:
        total += len(entry[2])
        if group and total > most:
            break
        group.append(entry)
    return group


def _values(readings: list[Reading]) -> str:
    """``SO2=40.12 mg/Nm3 00, NOx=null mg/Nm3 02`` for the debug log."""
    return ", ".join(
        f"{r.param}={'null' if r.value is None else r.value} {r.unit} {r.status}" for r in readings
    )


def _fault_readings(driver: Driver, time_ms: int, message: str) -> list[Reading]:
    return [
        Reading(driver.name, ch.param, ch.unit, time_ms, None, FAULT, message)
        for ch in driver.channels
    ]
