"""The running agent's health report: what ``station-agent status`` reads that the buffer
cannot hold (``agent.status.health``), rewritten about every second by the poll clock's thread
(it never waits for the buffer or a device), and once more, marked stopped, at the stop."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.poll.poller import Poller
from agent.runtime.delivery import Delivery
from agent.send.transport_health import TransportHealth
from agent.status.health import HealthFile, health_path
from agent.support.logs import event

log = logging.getLogger("agent")


class HealthReport:
    """Builds and writes the health file of one running agent."""

    def __init__(
        self,
        buffer_path: Path,
        poller: Poller,
        delivery: Delivery,
        not_started: Callable[[], dict[str, str]],
        seal_error: Callable[[], str | None],
    ) -> None:
        self.poller, self.delivery = poller, delivery
        self._not_started, self._seal_error = not_started, seal_error
        self._file = HealthFile(health_path(buffer_path))
        self._started_ms = int(time.time() * 1000)
        self.beat = time.monotonic()  # when it was last written (the workers' progress)
        self.transports = TransportHealth()  # failing since when, per transport

    def report(self) -> dict[str, Any]:
        """What ``station-agent status`` shows about the running process."""
        poller = self.poller
        return {
            "pid": os.getpid(),
            "started_at_ms": self._started_ms,
            "updated_at_ms": int(time.time() * 1000),
            "storage_error": poller.storage_error or self._seal_error(),
            "waiting_polls": poller.waiting(),
            "dropped_polls": poller.dropped,
            "missed_polls": poller.missed_polls,
            "commits": poller.commits,
            "devices_not_started": dict(self._not_started()),
            "transports": self.transports.report(
                self.delivery.senders, self.delivery.file_transports
            ),
        }

    def write(self, report: dict[str, Any]) -> None:
        """Write ``report`` (the running view's ``health()``: the dict the page reads too)."""
        self.beat = time.monotonic()
        try:
            self._file.write(report)
        except OSError as exc:  # reporting must never stop the agent
            event(log, logging.WARNING, "health_write_failed", error=str(exc))

    def stopping(self) -> None:
        """The transports are about to stop on purpose: report them as they were."""
        self.transports.stopping(self.delivery.senders, self.delivery.file_transports)

    def stopped(self, report: dict[str, Any]) -> None:
        """The last report (``report`` as in ``write``): no process, stopped on purpose."""
        self._file.write({**report, "pid": None, "stopped": True})
        self._file.close()
