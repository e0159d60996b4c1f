"""The process around the agent: one per buffer, signals, systemd readiness and watchdog, reload.

* The buffer's lock (``agent.support.instance_lock``) is taken before anything else and held across
  reloads: a second ``run`` on the same buffer exits 1, "already running (pid N)".
* ``READY=1`` once the buffer is open and the senders and the schedule run; then, at every
  tick, ``WATCHDOG=1`` only while every worker is alive and making progress.
* A worker that has *ended* (a sender thread killed by an error, the scheduler gone) ends the
  process with exit code 70 and a ``worker_died`` line naming it: systemd restarts the agent.
  A worker that is *stuck* — one run or turn lasting longer than the watchdog period
  (``WatchdogSec=``; 120 s without one) — is logged (``worker_stuck``), told to systemd in
  ``STATUS=``, and the pings stop until it moves again: systemd's watchdog restarts a process
  that stays stuck.
* SIGHUP reloads the configuration file: an invalid file is refused with the errors
  ``config validate`` prints and the agent keeps running on the old one; a valid one is applied
  to the running agent, restarting only the devices and transports whose sections changed
  (``agent.runtime.reload``: no poll slot skipped, unchanged connections kept). Only a change
  the running agent cannot take (station id, signing key, buffer file, durability or size cap)
  replaces the agent the way a stop and a start would (polls finish, everything is sealed,
  unacknowledged batches stay queued on disk) without releasing the lock; poll slots that
  fall in that switch are recorded as missed (``agent.poll.poller``).
* SIGTERM / SIGINT stop cleanly (exit 0).
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agent.config.model import Config
from agent.runtime.agent import Agent
from agent.runtime.preflight import load_checked
from agent.runtime.reload import restart_needed
from agent.support.instance_lock import InstanceLock
from agent.support.logs import event
from agent.support.systemd import notify, reloading_message, watchdog_interval_s
from core.errors import AgentError

if TYPE_CHECKING:
    from agent.runtime.remote_config.control import RemoteControl

log = logging.getLogger("agent.service")
EXIT_WORKER_DIED = 70  # EX_SOFTWARE
RELOAD_GRACE_S = 3.0
CHECK_S = 5.0  # workers checked this often (a quarter of the watchdog interval, if shorter)
# The cyclic collector's young generation: collected after this many new containers (Python's
# default is 700). Readings come by the thousand a second and are freed by reference counting;
# collecting every 700 of them, and walking every object of the process each 100th time, was
# ~5 % of the agent's CPU at 5,000 readings/s (bench/RESULTS.md).
GC_YOUNG = 10_000


class Service:
    """Runs one agent until a stop signal; ``run()`` returns the process's exit code."""

    def __init__(
        self,
        config: Config,
        config_path: Path | str | None = None,
        *,
        agent: Agent | None = None,
        make_agent: Callable[[Config, InstanceLock], Agent] | None = None,
        remote: RemoteControl | None = None,
    ) -> None:
        self.config = config
        self.config_path = Path(config_path) if config_path is not None else None
        self._make_agent = make_agent or (lambda cfg, lock: Agent(cfg, lock=lock))
        self._lock: InstanceLock | None = None
        if agent is None:
            self._lock = InstanceLock(config.buffer.path)
            self._lock.acquire()
            try:
                agent = self._make_agent(config, self._lock)
            except BaseException:
                self._lock.release()
                raise
        self.agent = agent
        self.remote = remote
        self._wake = threading.Event()
        self._stop_signal: str | None = None
        self._reload_requested = False
        self._stuck: str | None = None
        self._watchdog_s: float | None = None

    def _on_signal(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        event(log, logging.INFO, "signal_received", signal=name)
        if signum == signal.SIGHUP:
            self._reload_requested = True
        else:
            self._stop_signal = name
        self._wake.set()

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        watchdog_s = self._watchdog_s = watchdog_interval_s()
        tick = min(CHECK_S, watchdog_s / 4) if watchdog_s else CHECK_S
        self._limit(self.agent)
        try:
            self.agent.start()
            _settle_memory()
            notify(f"READY=1\nSTATUS={self.config.summary()}")
            if self.remote is not None:
                self.remote.start(self, self._wake.set)
            while self._stop_signal is None:
                self._wake.wait(tick)
                self._wake.clear()
                if self._reload_requested:
                    self._reload_requested = False
                    self.reload()
                self._remote_tick()
                dead, stuck = self.agent.check()
                if dead is not None:
                    event(log, logging.CRITICAL, "worker_died", worker=dead)
                    notify(f"STOPPING=1\nSTATUS=worker died: {dead}")
                    self.agent.stop(grace_s=5.0)
                    return EXIT_WORKER_DIED
                self._report_stuck(stuck)
                if watchdog_s and stuck is None:
                    notify("WATCHDOG=1")
            notify("STOPPING=1")
            if self.remote is not None:
                self.remote.stop()
            self.agent.stop()
            return 0
        finally:
            if self._lock is not None:
                self._lock.release()

    def _limit(self, agent: Agent) -> None:
        """A worker is stuck after one watchdog period without progress."""
        if self._watchdog_s:
            agent.stuck_s = self._watchdog_s

    def _report_stuck(self, stuck: str | None) -> None:
        if stuck is not None and self._stuck is None:
            event(log, logging.ERROR, "worker_stuck", worker=stuck, watchdog="pings stopped")
            notify(f"STATUS=worker stuck: {stuck}")
        elif stuck is None and self._stuck is not None:
            event(log, logging.WARNING, "worker_progressing_again", was=self._stuck)
            notify(f"STATUS={self.config.summary()}")
        self._stuck = stuck

    def reload(self) -> bool:
        """Replace the running agent by one on the configuration file as it is now (or keep
        the remote document in force: ``agent.runtime.remote_config``); on any error keep the
        running one. Returns True when reloaded."""
        if self.config_path is None or self._lock is None:
            event(log, logging.ERROR, "reload_refused", error="no configuration file to reload")
            return False
        try:
            config = load_checked(self.config_path)  # what run and validate check
            if self.remote is not None:
                self.remote.local_reload(config)  # calls switch()
            else:
                self.switch(config)
        except AgentError as exc:
            event(log, logging.ERROR, "reload_refused", errors=str(exc), kept="old config")
            return False
        except Exception as exc:  # whatever the new file makes fail, the old agent runs on
            event(
                log,
                logging.ERROR,
                "reload_refused",
                errors=f"{type(exc).__name__}: {exc}",
                kept="old config",
            )
            return False
        return True

    def switch(self, config: Config) -> None:
        """Run on ``config`` from now on: in place when the running agent can take it (only
        what changed restarts), else a new agent replaces it. Raises, the old one running on,
        if ``config`` cannot be built."""
        if config.buffer.path != self.config.buffer.path:
            raise AgentError(
                f"{self.config_path}: buffer.path cannot change on reload "
                f"({self.config.buffer.path} -> {config.buffer.path}); restart the service"
            )
        restart = restart_needed(self.config, config)
        if restart is None:  # only what changed restarts
            notify(reloading_message())
            self.agent.reload(config)  # new drivers, transports: may fail, nothing changed
            self.config = config
            notify(f"READY=1\nSTATUS={config.summary()}")
            event(log, logging.INFO, "config_reloaded", config=str(self.config_path))
            return
        new = self._make_agent(config, self._lock)  # type: ignore[arg-type]  # key, drivers...
        notify(reloading_message())
        event(log, logging.INFO, "reload_restarts_agent", changed=restart)
        self.agent.stop(grace_s=RELOAD_GRACE_S)
        before = self.agent.next_polls()
        self.agent, self.config = new, config
        self._limit(new)
        new.start()
        new.missed_since(before, "poll skipped: the configuration was being reloaded")
        notify(f"READY=1\nSTATUS={config.summary()}")
        event(log, logging.INFO, "config_reloaded", config=str(self.config_path))

    def _remote_tick(self) -> None:
        """Documents, probation, pin, log level (``agent.runtime.remote_config``): never
        the end of the service."""
        if self.remote is None:
            return
        try:
            self.remote.tick()
        except Exception as exc:
            event(log, logging.ERROR, "remote_config_error", error=f"{type(exc).__name__}: {exc}")


def _settle_memory() -> None:
    """What start-up built (modules, configuration, drivers) lives as long as the process: move
    it out of the collector's sight (``gc.freeze``) and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, 10, 10)
