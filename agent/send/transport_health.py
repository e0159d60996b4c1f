"""What the health file says about each transport: progress, last error, failing since when."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from agent.send.sender import Sender
from agent.transports import PeriodFileTransport


class TransportHealth:
    """Builds the ``transports`` part of the health file; remembers since when each failed."""

    def __init__(self) -> None:
        self._failing: dict[str, int] = {}
        self._stopped: dict[str, dict[str, Any]] | None = None

    def stopping(
        self, senders: Sequence[Sender], file_transports: Sequence[PeriodFileTransport]
    ) -> None:
        """The agent stops its transports: from now on report them as they were just before,
        disconnected by us (a clean stop is not an outage: no ``failing_since`` from it)."""
        report = self.report(senders, file_transports)
        for figures in report.values():
            if "connected" in figures:
                figures["connected"] = False
        self._stopped = report

    def report(
        self, senders: Sequence[Sender], file_transports: Sequence[PeriodFileTransport]
    ) -> dict[str, dict[str, Any]]:
        """Transport name -> its figures, as ``station-agent status`` reads them."""
        if self._stopped is not None:
            return {name: dict(figures) for name, figures in self._stopped.items()}
        out: dict[str, dict[str, Any]] = {
            s.name: {
                "in_flight": s.in_flight(),
                "acked": s.acked,
                "failures": s.failures,
                "last_error": s.last_error or s.transport.last_error,
                "failing_since_ms": self.failing_since(s),
                "connected": s.transport.connected(),
            }
            for s in senders
        }
        for t in file_transports:
            out[t.name] = {"in_flight": 0, "acked": t.delivered, "last_error": t.last_error}
        return out

    def failing_since(self, sender: Sender) -> int | None:
        """Since when ``sender``'s transport has been offline or failing (None: it is not);
        cleared as soon as it is connected again and nothing has failed since."""
        failing = not sender.transport.connected() or bool(
            sender.last_error or sender.transport.last_error
        )
        if not failing:
            self._failing.pop(sender.name, None)
            return None
        since = self._failing.setdefault(sender.name, int(time.time() * 1000))
        if sender.failing_since_ms is not None:
            since = min(since, sender.failing_since_ms)
        return since
