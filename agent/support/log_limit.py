"""Log lines an outsider can cause, at most once a minute each, with their count.

Anyone allowed to publish on a station's acks topic, to talk to its HJ 212 port or to open its
page can make the agent see bad input as fast as the network carries it; one log line per bad
message would fill the journal. ``LimitedLog`` writes the first occurrence of an event at once,
then at most one line per ``every_s`` (default 60 s) per event, carrying ``count`` (since start)
and ``held_back`` (occurrences not written since the previous line). Thread-safe; the counts are
readable (``count(event)``) for a status or a metric.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from agent.support.logs import event

EVERY_S = 60.0


class LimitedLog:
    """At most one line per event name per ``every_s``, each with the running count."""

    def __init__(
        self,
        logger: logging.Logger,
        every_s: float = EVERY_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log, self.every_s, self._monotonic = logger, every_s, monotonic
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._held: dict[str, int] = {}
        self._last: dict[str, float] = {}

    def __call__(self, level: int, name: str, **fields: object) -> None:
        """Count one occurrence of ``name``; write it if none was written in ``every_s``."""
        now = self._monotonic()
        with self._lock:
            count = self._counts[name] = self._counts.get(name, 0) + 1
            last = self._last.get(name)
            if last is not None and now - last < self.every_s:
                self._held[name] = self._held.get(name, 0) + 1
                return
            self._last[name] = now
            held = self._held.pop(name, 0)
        event(self.log, level, name, **fields, count=count, held_back=held)

    def count(self, name: str) -> int:
        """How many times ``name`` happened since start (written or not)."""
        with self._lock:
            return self._counts.get(name, 0)
