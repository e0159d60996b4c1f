"""The agent: wires drivers -> poller -> buffer -> sealer -> senders, on a schedule.

Polls run on their own clock at each device's interval, aligned to the clock (a 60 s poll fires
at :00; ``agent.poll.poll_clock``, whose thread also writes the health report every second); the
housekeeping look, sealing, pruning and a listening device's retries each run on a thread of
their own (``agent.support.ticker``).
Listening drivers are started; one that cannot start (its port in use) is a device error, logged
and retried every ``poll_interval_s``, like a polled device that is down: the other devices work
on. Sealing runs every ``buffer.seal_interval_s`` and wakes the senders. ``stop``
lets running polls finish, seals what they stored, gives in-flight sends a grace period, and
leaves everything else queued on disk.

A poll that cannot start on time is recorded as a hole (``agent.poll.poller``); ``check`` tells the
service (``agent.service``) whether every worker is alive and making progress.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent.buffer import Buffer
from agent.config.model import Config
from agent.poll.poll_clock import POLL_INSTANCES, PollClock, aligned_start  # noqa: F401 (re-exported)
from agent.poll.poller import Poller
from agent.protocol.batch import Signer
from agent.protocol.keys import load_private_key
from agent.records import descriptor
from agent.records.identities import Identities
from agent.records.maintenance.watch import MaintenanceWatch
from agent.records.rotation.record import KeyRotation
from agent.runtime import pruning
from agent.runtime.housekeeping import EVERY_S, Housekeeping
from agent.seal.batch_size import BatchSizer
from agent.seal.sealing import Sealer
from agent.send.sender import Sender
from agent.send.transport_health import TransportHealth
from agent.status.health import HealthFile, health_path
from agent.support.clock import Clock, SystemClock
from agent.support.clock_sync import clock_synchronized
from agent.support.instance_lock import InstanceLock
from agent.support.logs import event
from agent.support.ticker import Ticker
from agent.support.workers import Workers
from agent.transports import PeriodFileTransport, make_period_file_transport, make_transport
from core.batch import SealedBatch
from core.errors import StorageError
from drivers import Driver, ListeningDriver, make_driver

if TYPE_CHECKING:
    from agent.web.server import WebServer

log = logging.getLogger("agent")
PRUNE_EVERY_S = 3600
HEALTH_EVERY_S = 1.0
MAX_WORKERS = 20
STUCK_S = 120.0  # a worker without progress this long stops the watchdog pings


class Agent:
    """One running station agent."""

    def __init__(
        self, config: Config, clock: Clock | None = None, lock: InstanceLock | None = None
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        key = load_private_key(config.signing.key)  # refuses a key others can read
        self.signer = Signer(key)
        self._own_lock = lock is None  # one agent per buffer: ours, or the service's
        self.lock = lock or InstanceLock(config.buffer.path)
        if not self.lock.held:
            self.lock.acquire()
        try:
            self._build(config)
        except BaseException:
            if self._own_lock:
                self.lock.release()
            raise

    def _build(self, config: Config) -> None:
        self.buffer = Buffer(
            config.buffer.path,
            durability=config.buffer.durability,
            max_disk_mb=config.buffer.max_disk_mb,
        )
        self.sealer = Sealer(
            self.buffer,
            self.signer,
            config.station.id,
            self.clock,
            config.buffer.max_readings_per_batch,
            payload_version=config.buffer.payload_version,
        )
        self.sizer = BatchSizer.from_config(config.buffer)  # larger batches after an outage
        # The chain names the key in force: a rotation a crash interrupted is finished here, a
        # key the chain does not name is refused (agent.records.rotation.record).
        self.rotation = KeyRotation(config.signing.key, self.buffer, self.sealer)
        self.rotation.settle()
        self.signer = self.sealer.signer
        self.poller = Poller(
            self.buffer, self.clock, getattr(self.clock, "synchronized", clock_synchronized)
        )
        self.drivers: list[Driver | ListeningDriver] = [make_driver(d) for d in config.devices]
        self.identities = Identities()  # what the devices state about themselves (descriptor)
        self.poller.after_read = functools.partial(self.identities.after_poll, self)
        channels = {d.name: [c.param for c in d.channels] for d in self.drivers}
        self.maintenance = MaintenanceWatch(
            self.buffer.maintenance, self.clock, channels, self.request_record
        )
        self.poller.status_filter = self.maintenance.accept
        self.senders: list[Sender] = []
        # Period files (TT10) are rebuilt from stored readings, not sent as batches: own loops.
        self.file_transports: list[PeriodFileTransport] = []
        for tc in config.transports:
            if tc.delivers == "period_files":
                file_transport = make_period_file_transport(tc, config.buffer.path, self.clock)
                self.buffer.retention.register(file_transport)  # keeps what unsent files need
                self.file_transports.append(file_transport)
            else:
                transport = make_transport(tc, config.station.id)
                self.senders.append(Sender(self.buffer, transport, self.clock))
        self.sealed = 0
        self.seal_error: str | None = None
        self.not_started: dict[str, str] = {}  # listening device -> why it could not start
        self._health = HealthFile(health_path(config.buffer.path))
        self._started_ms = int(time.time() * 1000)
        # Polls: at most room per device for its poll and one late run behind it (a slow device
        # must not delay another's poll; capped, since devices on one serial bus take turns
        # anyway); the poll clock wakes these helpers only when polls wait (agent.poll.poll_clock).
        # A thread for each timed duty (agent.support.ticker); polls stuck on a locked buffer never
        # keep the health file from being written (the clock's thread writes it).
        self.workers = Workers()
        helpers = min(MAX_WORKERS, len(self.drivers) * POLL_INSTANCES)
        # The clock's thread writes the health report: it never waits for the buffer or a
        # device, and the report riding on the polls' wake-ups costs no wake-up of its own.
        self.polls = PollClock(
            self.poller,
            self.clock,
            self.workers,
            helpers,
            beat=self.write_health,
            beat_s=HEALTH_EVERY_S,
        )
        self.tickers: dict[str, Ticker] = {}  # the timed duties, made in start()
        self._stopped = threading.Event()
        self._seal_lock = threading.Lock()
        self.housekeeping = Housekeeping(
            self.buffer,
            self.maintenance,
            self.rotation,
            self._seal_lock,
            lambda: [s.name for s in self.senders],
            self._record_sealed,
        )
        self.stuck_s = STUCK_S  # no progress this long: stuck (the service sets its watchdog)
        self._health_beat = time.monotonic()
        self._transport_health = TransportHealth()  # failing since when, per transport
        self.web: WebServer | None = None  # the station page and /metrics, when configured
        if config.web is not None:  # imported only then: prometheus-client costs RSS
            from agent.web.server import WebServer

            self.web = WebServer(self, config.web)

    def start(self) -> None:
        """Seal the descriptor if it changed, open devices, start senders and the timed duties;
        returns at once."""
        cfg = self.config
        # Python's GIL switch interval (5 ms) is kept: at 1 ms, polls waiting for the GIL woke
        # five times as often, ~10 % more CPU; the seal's pauses between full batches keep the
        # polls of 50 devices on time without it (bench/RESULTS.md).
        for driver in self.drivers:
            if isinstance(driver, ListeningDriver):
                continue
            try:
                driver.open()
            except Exception as exc:  # a device down at start-up is polled (and reported) anyway
                event(
                    log, logging.WARNING, "device_open_failed", device=driver.name, error=str(exc)
                )
        self.identities.read(self.drivers)  # what the opened devices state (SDI-12 aI!)
        descriptor.seal_if_changed(self)  # before any reading of this config is sealed
        self.maintenance.start()  # before the first reading: windows lasting across a restart
        for driver, dcfg in zip(self.drivers, cfg.devices, strict=True):
            if isinstance(driver, ListeningDriver) and not self._start_listening(driver):
                job = self._listen_job(driver)
                self._add_job(self._retry_listening, dcfg.poll_interval_s, job, driver)
        for sender in self.senders:
            sender.start()
            self.workers.loop(f"sender-{sender.name}", self.stuck_s, sender.progress)
        for file_transport in self.file_transports:
            file_transport.start()
        for driver, dcfg in zip(self.drivers, cfg.devices, strict=True):
            if isinstance(driver, ListeningDriver):
                continue
            interval_s = dcfg.poll_interval_s
            self.polls.add(driver, interval_s, max(self.stuck_s, 2 * interval_s))
        self._add_job(self.seal_and_wake, cfg.buffer.seal_interval_s, "seal")
        self._add_job(self.prune, PRUNE_EVERY_S, "prune")
        self._add_job(self.housekeeping.run, EVERY_S, "housekeeping")
        self.workers.loop("health", self.stuck_s, lambda: self._health_beat)
        self.write_health()  # `status` says "running" from the first moment, not a second later
        for ticker in list(self.tickers.values()):
            ticker.start()
        self.polls.start()
        if self.web is not None:
            self.web.start()
        event(
            log,
            logging.INFO,
            "agent_started",
            station=cfg.station.id,
            kid=self.signer.kid,
            devices=len(self.drivers),
            transports=",".join(
                [s.name for s in self.senders] + [t.name for t in self.file_transports]
            ),
            buffer=str(cfg.buffer.path),
        )

    def _start_listening(self, driver: ListeningDriver) -> bool:
        """Start a listening driver; False (logged, kept for status) if it cannot start."""
        try:
            driver.start(functools.partial(self.poller.accept, driver.name))
        except Exception as exc:  # port in use, a driver bug: this device only, retried
            self._close(driver)
            self.not_started[driver.name] = str(exc)
            event(log, logging.WARNING, "device_start_failed", device=driver.name, error=str(exc))
            return False
        if self.not_started.pop(driver.name, None) is not None:
            event(log, logging.INFO, "device_started", device=driver.name)
        return True

    def _retry_listening(self, driver: ListeningDriver) -> None:
        if self._start_listening(driver):
            ticker = self.tickers.pop(self._listen_job(driver), None)
            if ticker is not None:  # this run is its last
                ticker.stop()

    @staticmethod
    def _listen_job(driver: ListeningDriver) -> str:
        return f"listen-{driver.name}"

    def _add_job(self, fn, interval_s: float, job_id: str, *args) -> None:
        """Run ``fn(*args)`` every ``interval_s`` from start(); a run lasting over twice that
        (at least ``stuck_s``) is stuck."""
        limit_s = max(self.stuck_s, 2 * interval_s)
        run = functools.partial(fn, *args)
        self.tickers[job_id] = Ticker(job_id, interval_s, run, self.workers, limit_s)

    def next_polls(self) -> dict[str, tuple[float, datetime]]:
        """See ``PollClock.next_polls``."""
        return self.polls.next_polls()

    def missed_since(self, before: dict[str, tuple[float, datetime]], reason: str) -> None:
        """See ``PollClock.missed_since``."""
        self.polls.missed_since(before, reason)

    def check(self) -> tuple[str | None, str | None]:
        """(dead worker, stuck worker): what has ended, what makes no progress; None if none."""
        for sender in self.senders:
            if not sender.alive():
                return f"sender-{sender.name} ({sender.died or 'ended'})", None
        if not self._stopped.is_set() and not self.polls.running:
            return "poll clock (stopped)", None
        for ticker in list(self.tickers.values()):  # a retry may end its own ticker meanwhile
            if not self._stopped.is_set() and not ticker.running and not ticker.stopped:
                return f"{ticker.name} (stopped)", None
        return None, self.workers.stuck()

    def seal_and_wake(self, final: bool = False) -> int:
        """Seal as ``agent.seal.batch_size`` says (all if ``final``), wake the senders; new
        batches.
        """
        with self._seal_lock:
            try:
                batches = self.sizer.seal(self.sealer, self.senders, final=final)
            except StorageError as exc:
                self.seal_error = str(exc)
                event(log, logging.ERROR, "seal_failed", error=str(exc))
                return 0
        self.seal_error = None
        self.sealed += len(batches)
        if batches:
            for sender in self.senders:
                sender.wake()
        return len(batches)

    def stated(self) -> dict[str, dict[str, Any] | None]:
        """What each device stated about itself (``agent.records.identities``), by device."""
        return self.identities.stated

    def request_record(self, kind: str, body: dict[str, Any]) -> SealedBatch:
        """Seal a record of ``kind`` (registered in ``core.records``) now; thread-safe.

        Any thread may call it: it takes the seal lock (so it waits for a seal tick in progress,
        and the sealing thread waits for it), first seals the readings stored before the call
        (so a record follows every reading stored before it was asked for), then seals the
        record, fsynced (synchronous=FULL) before it returns, and wakes the senders. Raises
        ``core.records.RecordError`` (nothing sealed) if the body does not fit the kind's model,
        ``StorageError`` if the buffer cannot take it (also kept in ``seal_error``)."""
        with self._seal_lock:
            try:
                batches = self.sealer.seal_pending()
                record = self.sealer.seal_record(kind, body)
            except StorageError as exc:
                self.seal_error = str(exc)
                event(log, logging.ERROR, "seal_failed", error=str(exc), kind=kind)
                raise
        self.seal_error = None
        self.sealed += len(batches) + 1
        for sender in self.senders:
            sender.wake()
        return record

    def _record_sealed(self) -> None:
        """Housekeeping sealed a record (a rotation: the signer changed)."""
        self.signer = self.sealer.signer
        for sender in self.senders:
            sender.wake()

    def health(self) -> dict[str, Any]:
        """What ``station-agent status`` shows about the running process."""
        return {
            "pid": os.getpid(),
            "started_at_ms": self._started_ms,
            "updated_at_ms": int(time.time() * 1000),
            "storage_error": self.poller.storage_error or self.seal_error,
            "waiting_polls": self.poller.waiting(),
            "dropped_polls": self.poller.dropped,
            "missed_polls": self.poller.missed_polls,
            "commits": self.poller.commits,
            "devices_not_started": dict(self.not_started),
            "transports": self._transport_health.report(self.senders, self.file_transports),
        }

    def write_health(self) -> None:
        self._health_beat = time.monotonic()
        try:
            self._health.write(self.health())
        except OSError as exc:  # reporting must never stop the agent
            event(log, logging.WARNING, "health_write_failed", error=str(exc))

    def prune(self) -> int:
        """See ``agent.runtime.pruning.prune``."""
        senders = [s.name for s in self.senders]
        retention_days = self.config.buffer.retention_days
        deleted = pruning.prune(
            self.buffer, self.clock, retention_days, senders, self.file_transports
        )
        descriptor.reseal_if_pruned(self)
        return deleted

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop cleanly: finish polls, seal, let in-flight sends finish, close everything."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.web is not None:
            self.web.stop()
        self.polls.shutdown()
        for ticker in list(self.tickers.values()):
            ticker.stop()
        for driver in self.drivers:  # no more pushed readings once we seal the last batch
            if isinstance(driver, ListeningDriver):
                self._close(driver)
            else:
                self.poller.store_holes(driver)
        self.poller.flush()
        self.maintenance.refresh()  # the records of windows that ended meanwhile
        self.seal_and_wake(final=True)
        deadline = time.monotonic() + grace_s
        for sender in self.senders:
            sender.stop(max(0.5, deadline - time.monotonic()))
        for file_transport in self.file_transports:
            file_transport.stop(max(0.5, deadline - time.monotonic()))
        for driver in self.drivers:
            if not isinstance(driver, ListeningDriver):
                self._close(driver)
        backlog = {s.name: s.buffer.first_pending_seq(s.name) for s in self.senders}
        self.buffer.close()
        self._health.write({**self.health(), "pid": None, "stopped": True})
        self._health.close()
        if self._own_lock:
            self.lock.release()
        event(
            log,
            logging.INFO,
            "agent_stopped",
            **{f"first_unacked_{k}": v for k, v in backlog.items()},
        )
        if self.poller.waiting():  # the buffer could not take them (full disk) before the stop
            event(log, logging.ERROR, "readings_lost_at_stop", polls=self.poller.waiting())

    @staticmethod
    def _close(driver: Driver | ListeningDriver) -> None:
        try:
            driver.stop() if isinstance(driver, ListeningDriver) else driver.close()
        except Exception:  # closing a dead connection must not block shutdown
            pass
