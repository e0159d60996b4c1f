"""Rate-limited structured events, for the log lines an outsider can cause.

Anyone allowed to publish on a station's acks topic, to talk to its HJ 212 port or to open its
page can make the agent see bad input as fast as the network carries it; one log line per bad
message would fill the journal. ``LogLimiter`` (``core.log_limit``, shared with the drivers)
decides; two ways to write with it:

* ``limited_event(logger, limiter, key, level, name, **fields)``: the line when ``key`` is
  allowed, with ``suppressed=N`` (lines held back before it);
* ``LimitedLog(logger)``: per event name, the first occurrence at once, then at most one line
  per ``every_s`` (60 s), each with ``count`` (since start) and ``held_back``; the counts are
  readable (``count(name)``) for a status or a metric.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from agent.support.logs import event
from core.log_limit import LogLimiter

__all__ = ["EVERY_S", "LimitedLog", "LogLimiter", "limited_event"]

EVERY_S = 60.0


def limited_event(
    logger: logging.Logger,
    limiter: LogLimiter,
    key: str,
    level: int,
    name: str,
    **fields: object,
) -> bool:
    """Log ``name`` if ``limiter`` allows ``key`` now (with ``suppressed=N`` when lines were
    held back); returns whether it was written."""
    allowed, held = limiter.allow(key)
    if allowed:
        if held:
            fields["suppressed"] = held
        event(logger, level, name, **fields)
    return allowed


class LimitedLog:
    """At most one line per event name per ``every_s``, each with the running count."""

    def __init__(
        self,
        logger: logging.Logger,
        every_s: float = EVERY_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log, self.every_s, self._monotonic = logger, every_s, monotonic
        self._limiter = LogLimiter(every_s, monotonic=lambda: self._monotonic())
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def __call__(self, level: int, name: str, **fields: object) -> None:
        """Count one occurrence of ``name``; write it if none was written in ``every_s``."""
        with self._lock:
            self._counts[name] += 1
            count = self._counts[name]
        allowed, held = self._limiter.allow(name)
        if allowed:
            event(self.log, level, name, **fields, count=count, held_back=held)

    def count(self, name: str) -> int:
        """How many times ``name`` happened since start (written or not)."""
        with self._lock:
            return self._counts[name]
