"""Are the agent's workers alive and making progress? What the systemd watchdog is fed on.

A scheduled job (a device's poll, sealing, the health report) is wrapped by ``job``: it is
stuck when one run has lasted longer than its limit. A loop (a sender) reports ``beat`` on
every turn: it is stuck when it has not turned for longer than its limit. A worker that has
*ended* is reported by the daemon itself (``Sender.alive``), since no beat can tell that apart
from a slow turn soon enough.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any


class Workers:
    """Progress of the agent's workers, by name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, float] = {}  # job -> when its current run started
        self._limits: dict[str, float] = {}
        self._beats: dict[str, Callable[[], float]] = {}

    def job(self, name: str, limit_s: float, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` wrapped so that a run lasting more than ``limit_s`` counts as stuck."""
        self._limits[name] = limit_s

        @functools.wraps(fn)
        def run(*args: Any) -> Any:
            with self._lock:
                self._running[name] = time.monotonic()
            try:
                return fn(*args)
            finally:
                with self._lock:
                    self._running.pop(name, None)

        return run

    def loop(self, name: str, limit_s: float, last_beat: Callable[[], float]) -> None:
        """A loop whose last turn (monotonic time) ``last_beat()`` tells."""
        self._limits[name] = limit_s
        self._beats[name] = last_beat

    def forget(self, name: str) -> None:
        """A worker that has ended on purpose (a transport a reload removed)."""
        self._beats.pop(name, None)
        self._limits.pop(name, None)

    def stuck(self) -> str | None:
        """The first worker that is not making progress, and why; None when all are."""
        now = time.monotonic()
        with self._lock:
            running = dict(self._running)
        for name, started in running.items():
            if now - started > self._limits[name]:
                return f"{name}: one run has lasted {now - started:.0f} s"
        for name, last_beat in self._beats.items():
            if now - last_beat() > self._limits[name]:
                return f"{name}: no progress for {now - last_beat():.0f} s"
        return None
