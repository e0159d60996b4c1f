"""The agent's seldom jobs (sealing, pruning, a listening device's retries) on APScheduler.

Every job runs at whole multiples of its interval since the epoch plus ``PHASE_S``; a job
whose previous run is still going is not started twice, and slots missed while the process was
busy are coalesced into one run (these jobs catch up by themselves: a seal takes whatever is
waiting). The polls keep their own clock, where no slot passes unrecorded (``agent.poll_clock``);
the once-a-second duties run on threads of their own (``agent.ticker``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from agent.poll_clock import aligned_start
from agent.ticker import PHASE_S  # the jobs run this long after the whole multiples too
from agent.workers import Workers


class Schedule:
    """A background scheduler with ``threads`` workers."""

    def __init__(self, threads: int, workers: Workers) -> None:
        self.workers = workers
        executor = ThreadPoolExecutor(max_workers=threads)
        self._scheduler = BackgroundScheduler(timezone=UTC, executors={"default": executor})

    def add(
        self, fn: Callable[..., Any], interval_s: float, job_id: str, limit_s: float, *args: Any
    ) -> None:
        """Run ``fn(*args)`` every ``interval_s``; one run lasting over ``limit_s`` is stuck."""
        self._scheduler.add_job(
            self.workers.job(job_id, limit_s, fn),
            IntervalTrigger(
                seconds=interval_s,
                start_date=aligned_start(interval_s) + timedelta(seconds=PHASE_S),
                timezone=UTC,
            ),
            args=args,
            id=job_id,
            max_instances=1,
            coalesce=True,
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
        """Start nothing more, wait for the running jobs."""
        self._scheduler.shutdown(wait=True)
