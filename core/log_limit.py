"""Rate limits for log lines an outsider can cause (garbage on a listener, bad page requests,
forged acks): a flood must not flood the journal.

``LogLimiter(interval_s).allow(key)`` says whether a line for ``key`` may be written now: the
first ``burst`` lines of a key in each interval go through, the rest are counted and the next
line allowed carries that count (``suppressed=N``), so no event goes unaccounted. Keys are few
and fixed by the caller (an event name and a reason, never a peer's address): at most
``MAX_KEYS`` are tracked, the oldest forgotten first.

It lives in ``core`` so that drivers (which may not import the agent) use the same one;
``agent.support.log_limit`` adds the structured-event helper.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_KEYS = 256


@dataclass
class _Window:
    started: float  # monotonic start of the current interval
    written: int  # lines allowed in this interval
    suppressed: int  # lines refused since the last one allowed


class LogLimiter:
    """At most ``burst`` lines per key per ``interval_s``; counts what it holds back."""

    def __init__(
        self,
        interval_s: float,
        burst: int = 1,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s <= 0 or burst < 1:
            raise ValueError("LogLimiter: interval_s > 0 and burst >= 1 expected")
        self.interval_s, self.burst = interval_s, burst
        self._monotonic = monotonic
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str) -> tuple[bool, int]:
        """(may a line for ``key`` be written now, lines held back since the last one written).
        The count is reset when a line is allowed: the caller writes it in that line."""
        now = self._monotonic()
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = _Window(now, 0, 0)
                while len(self._windows) > MAX_KEYS:
                    self._windows.popitem(last=False)
            elif now - window.started >= self.interval_s:
                window.started, window.written = now, 0
            if window.written >= self.burst:
                window.suppressed += 1
                return False, window.suppressed
            window.written += 1
            held, window.suppressed = window.suppressed, 0
            return True, held
