"""Where the agent gets the time. Readings are stamped from a ``Clock`` so tests can move it.

``SystemClock`` is the real one. ``Agent(config, clock=...)`` takes another: tests and the chaos
run's launcher (``simulators/agent_with_clock.py``) pass theirs through that constructor.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    """The machine's UTC clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000
