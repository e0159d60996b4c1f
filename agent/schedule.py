"""The agent's clock-aligned jobs on APScheduler, where no poll slot passes unrecorded.

Every job runs at whole multiples of its interval since the epoch (a 60 s poll fires at :00).
A poll slot either runs — on time, or late, after the device's previous poll, stamped with the
time it really ran — or is handed to the poller as missed (``Poller.missed``: counted, logged,
stored as status ``02``). Every way APScheduler has of not running a slot ends in the second:

* ``max_instances``: a poll job may have one run going and one more waiting for it (the late
  one); a slot due while both are taken raises ``EVENT_JOB_MAX_INSTANCES``, recorded;
* ``misfire_grace_time``: a slot that starts later than its grace time (the process too busy,
  or suspended) raises ``EVENT_JOB_MISSED``, recorded;
* ``coalesce``: never for polls (it would drop all but the last of several due slots silently);
* a slot the executor cannot take (APScheduler logs "Error submitting job" and moves on) and a
  poll run that raises (``EVENT_JOB_ERROR``) are recorded too.

``next_polls``/``missed_since`` carry the slots over a reload.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from agent.clock import Clock
from agent.poller import Poller
from agent.workers import Workers

POLL = "poll-"  # job id prefix of a device's poll: "poll-{device}"
POLL_INSTANCES = 2  # a device's poll running, and the next slot waiting to run late after it


def aligned_start(interval_s: float, now: float | None = None) -> datetime:
    """The next instant that is a whole multiple of ``interval_s`` since the epoch."""
    now = time.time() if now is None else now
    return datetime.fromtimestamp(math.ceil(now / interval_s) * interval_s, tz=UTC)


class Schedule:
    """A background scheduler with ``threads`` workers whose missed poll slots are recorded."""

    def __init__(self, threads: int, poller: Poller, clock: Clock, workers: Workers) -> None:
        self.poller, self.clock, self.workers = poller, clock, workers
        executor = _RecordingExecutor(threads, self._not_submitted)
        self._scheduler = BackgroundScheduler(timezone=UTC, executors={"default": executor})
        self._scheduler.add_listener(
            self._on_missed, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED | EVENT_JOB_ERROR
        )
        self._final: dict[str, tuple[float, datetime]] | None = None

    def add(
        self, fn: Callable[..., Any], interval_s: float, job_id: str, limit_s: float, *args: Any
    ) -> None:
        """Run ``fn(*args)`` every ``interval_s``; one run lasting over ``limit_s`` is stuck."""
        self._scheduler.add_job(
            self.workers.job(job_id, limit_s, fn),
            IntervalTrigger(seconds=interval_s, start_date=aligned_start(interval_s), timezone=UTC),
            args=args,
            id=job_id,
            max_instances=POLL_INSTANCES if job_id.startswith(POLL) else 1,
            coalesce=not job_id.startswith(POLL),  # each poll slot runs or is reported missed
            misfire_grace_time=max(1, int(interval_s)),
        )

    def remove(self, job_id: str) -> None:
        """Run ``job_id`` no more (it may be running now; that run ends normally)."""
        self._scheduler.remove_job(job_id)

    def start(self) -> None:
        self._scheduler.start()

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def shutdown(self) -> None:
        """Start nothing more, note the first slot of each poll not started, wait for the
        running jobs."""
        self._scheduler.pause()
        self._final = self.next_polls()
        self._scheduler.shutdown(wait=True)

    def _on_missed(self, ev: JobEvent) -> None:
        """APScheduler did not run a poll slot: record the hole."""
        if not ev.job_id.startswith(POLL):
            return
        if ev.code == EVENT_JOB_MAX_INSTANCES:
            times = list(getattr(ev, "scheduled_run_times", []))
            reason = "poll skipped: the previous polls of this device were still running"
        elif ev.code == EVENT_JOB_ERROR:
            times = [ev.scheduled_run_time]
            reason = f"poll failed: {getattr(ev, 'exception', None)!r}"
        else:
            times = [ev.scheduled_run_time]
            reason = "poll skipped: the agent could not start it on time (busy or suspended)"
        self.poller.missed(ev.job_id.removeprefix(POLL), self._slots_ms(times), reason)

    def _not_submitted(self, job_id: str, times: list[datetime], error: BaseException) -> None:
        if job_id.startswith(POLL):
            reason = f"poll not started: the scheduler could not submit it ({error!r})"
            self.poller.missed(job_id.removeprefix(POLL), self._slots_ms(times), reason)

    def _slots_ms(self, times: list[datetime]) -> list[int]:
        """Scheduled times in the agent's clock (rounded: the clocks are read µs apart)."""
        offset_ms = round((self.clock.now_ms() - time.time_ns() // 1_000_000) / 10) * 10
        return [int(t.timestamp() * 1000) + offset_ms for t in times]

    def next_polls(self) -> dict[str, tuple[float, datetime]]:
        """Each polled device's (interval, first slot not yet started); after ``shutdown``,
        the first slot this schedule never started."""
        if self._final is not None:
            return self._final
        out = {}
        for job in self._scheduler.get_jobs():
            if job.id.startswith(POLL) and job.next_run_time is not None:
                interval = job.trigger.interval.total_seconds()
                out[job.id.removeprefix(POLL)] = (interval, job.next_run_time)
        return out

    def missed_since(self, before: dict[str, tuple[float, datetime]], reason: str) -> None:
        """Record as holes the slots between another schedule's ``next_polls`` (shut down) and
        this one's first poll, for the devices both poll at the same interval (a reload)."""
        for name, (interval, first) in self.next_polls().items():
            if before.get(name, (None,))[0] != interval:
                continue
            slots: list[datetime] = []
            slot = before[name][1]
            while slot < first and len(slots) < 100_000:
                slots.append(slot)
                slot += timedelta(seconds=interval)
            if slots:
                self.poller.missed(name, self._slots_ms(slots), reason)


class _RecordingExecutor(ThreadPoolExecutor):
    """APScheduler's thread pool, telling ``on_error`` of slots it could not take (APScheduler
    itself only logs them)."""

    def __init__(
        self, threads: int, on_error: Callable[[str, list[datetime], BaseException], None]
    ) -> None:
        super().__init__(max_workers=threads)
        self._on_error = on_error

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        try:
            super()._do_submit_job(job, run_times)
        except BaseException as exc:
            self._on_error(job.id, list(run_times), exc)
            raise
