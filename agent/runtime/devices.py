"""The agent's devices: their drivers opened, polled on the poll clock or listening, closed.

A polled device is opened at start (one that is down is polled, and reported, anyway) and put on
the poll clock (``agent.poll.poll_clock``). A listening driver (HJ 212) is started; one that
cannot start (its port in use) is a device error, logged and retried every
``poll_interval_s``, like a polled device that is down: the other devices work on.

``reload`` keeps every device whose section did not change as it is: its driver, its
connections (a datalogger's TCP sessions stay open) and its poll slots. A changed device's new
driver takes over at the slot the old one left off at; a removed one is closed once its polls
queued or running are committed.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence

from agent.poll.poll_clock import PollClock
from agent.poll.poller import Poller
from agent.support.logs import event
from agent.support.ticker import Ticker
from agent.support.workers import Workers
from drivers import DeviceConfig, Driver, ListeningDriver, make_driver

log = logging.getLogger("agent")
AnyDriver = Driver | ListeningDriver


class Devices:
    """Every configured device's driver, in configuration order."""

    def __init__(
        self,
        configs: Sequence[DeviceConfig],
        poller: Poller,
        polls: PollClock,
        workers: Workers,
        stuck_s: Callable[[], float],
    ) -> None:
        self.configs = list(configs)
        self.drivers: list[AnyDriver] = [make_driver(d) for d in self.configs]
        self.poller, self.polls, self.workers, self._stuck_s = poller, polls, workers, stuck_s
        self.not_started: dict[str, str] = {}  # listening device -> why it could not start
        self.retries: dict[str, Ticker] = {}  # listening device -> its start's retry

    def channels(self) -> dict[str, list[str]]:
        """Device name -> its channels' params (for the maintenance windows)."""
        return {d.name: [c.param for c in d.channels] for d in self.drivers}

    def open_polled(self) -> None:
        """Open every polled device (before the descriptor is sealed: what the devices state
        about themselves goes in it)."""
        for driver in self.drivers:
            if not isinstance(driver, ListeningDriver):
                _open(driver)

    def start(self, opened: bool = False) -> None:
        """Open (unless ``opened``) or start every device; put the polled ones on the clock."""
        for driver, config in zip(self.drivers, self.configs, strict=True):
            self._start_one(driver, config, None, opened)

    def _start_one(
        self, driver: AnyDriver, config: DeviceConfig, first_ms: int | None, opened: bool = False
    ) -> None:
        if isinstance(driver, ListeningDriver):
            if not self._start_listening(driver):
                self._retry(driver, config.poll_interval_s)
            return
        if not opened:
            _open(driver)
        interval_s = config.poll_interval_s
        limit_s = max(self._stuck_s(), 2 * interval_s)
        self.polls.add(driver, interval_s, limit_s, first_ms)

    def _start_listening(self, driver: ListeningDriver) -> bool:
        """Start a listening driver; False (logged, kept for status) if it cannot start."""
        try:
            driver.start(functools.partial(self.poller.accept, driver.name))
        except Exception as exc:  # port in use, a driver bug: this device only, retried
            close(driver)
            self.not_started[driver.name] = str(exc)
            event(log, logging.WARNING, "device_start_failed", device=driver.name, error=str(exc))
            return False
        if self.not_started.pop(driver.name, None) is not None:
            event(log, logging.INFO, "device_started", device=driver.name)
        return True

    def _retry(self, driver: ListeningDriver, interval_s: float) -> None:
        def retry() -> None:
            if self._start_listening(driver):
                ticker = self.retries.pop(driver.name, None)
                if ticker is not None:  # this run is its last
                    ticker.stop()

        limit_s = max(self._stuck_s(), 2 * interval_s)
        name = f"listen-{driver.name}"
        ticker = Ticker(name, interval_s, retry, self.workers, limit_s)
        self.retries[driver.name] = ticker
        ticker.start()

    def stop_listening(self) -> None:
        """No more pushed readings (before the last seal)."""
        for ticker in list(self.retries.values()):
            ticker.stop()
        for driver in self.drivers:
            if isinstance(driver, ListeningDriver):
                close(driver)

    def close_polled(self) -> None:
        for driver in self.drivers:
            if not isinstance(driver, ListeningDriver):
                close(driver)

    # -- reload ----------------------------------------------------------------------------

    def prepare(self, configs: Sequence[DeviceConfig]) -> dict[str, AnyDriver]:
        """The new drivers a reload to ``configs`` needs (changed or added devices); raises
        what a driver's construction raises (the reload is then refused, nothing changed)."""
        kept = dict(zip([c.name for c in self.configs], self.configs, strict=True))
        return {c.name: make_driver(c) for c in configs if kept.get(c.name) != c}

    def reload(
        self,
        configs: Sequence[DeviceConfig],
        new: dict[str, AnyDriver],
        between: Callable[[], object] = lambda: None,
    ) -> list[str]:
        """Switch to ``configs``: unchanged devices untouched; the changed and removed ones
        taken out, then ``between()`` (the new descriptor), then ``new`` (from ``prepare``)
        started; returns the names of the devices replaced, added or removed."""
        old = dict(zip([c.name for c in self.configs], self.drivers, strict=True))
        wanted = {c.name for c in configs}
        resumed: dict[str, tuple[float, int]] = {}
        for name, driver in old.items():
            if name in new or name not in wanted:
                slots = self._retire(driver)
                if slots is not None:
                    resumed[name] = slots
        self.configs = list(configs)
        self.drivers = [new.get(c.name) or old[c.name] for c in configs]
        between()
        for driver, config in zip(self.drivers, self.configs, strict=True):
            if config.name in new:
                interval, first_ms = resumed.get(config.name, (None, None))
                same = interval == config.poll_interval_s
                self._start_one(driver, config, first_ms if same else None)
        return sorted(set(new) | (set(old) - wanted))

    def _retire(self, driver: AnyDriver) -> tuple[float, int] | None:
        """Take a device out (its last polls committed first); its poll slots left, if polled."""
        if isinstance(driver, ListeningDriver):
            ticker = self.retries.pop(driver.name, None)
            if ticker is not None:
                ticker.stop()
            self.not_started.pop(driver.name, None)
            close(driver)
            return None
        slots = self.polls.remove(driver.name)
        close(driver)
        return slots


def close(driver: AnyDriver) -> None:
    """Close or stop a driver; closing a dead connection must not block shutdown."""
    try:
        driver.stop() if isinstance(driver, ListeningDriver) else driver.close()
    except Exception:
        pass


def _open(driver: Driver) -> None:
    try:
        driver.open()
    except Exception as exc:  # a device down at start-up is polled (and reported) anyway
        event(log, logging.WARNING, "device_open_failed", device=driver.name, error=str(exc))
