"""Where the agent gets the time. Readings are stamped from a ``Clock`` so tests can move it.

``SystemClock`` is the real one. ``OffsetFileClock`` adds a number of seconds read from a file
(re-read at most once a second) — the chaos suite uses it to jump the clock forwards and back
without touching the machine's clock.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Protocol

CLOCK_OFFSET_ENV = "STATION_AGENT_CLOCK_OFFSET_FILE"


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    """The machine's UTC clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class OffsetFileClock:
    """The system clock shifted by the float seconds written in ``path`` (missing file: 0)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset_ms = 0
        self._checked = 0.0

    def now_ms(self) -> int:
        mono = time.monotonic()
        if mono - self._checked >= 1.0:
            self._checked = mono
            try:
                self._offset_ms = int(float(self.path.read_text().strip() or 0) * 1000)
            except (OSError, ValueError):
                self._offset_ms = 0
        return time.time_ns() // 1_000_000 + self._offset_ms


def default_clock() -> Clock:
    """The system clock, or an offset clock when ``STATION_AGENT_CLOCK_OFFSET_FILE`` is set."""
    path = os.environ.get(CLOCK_OFFSET_ENV)
    return OffsetFileClock(Path(path)) if path else SystemClock()
