"""The agent: wires drivers -> poller -> buffer -> sealer -> senders, on a schedule.

Polls run on their own clock at each device's interval, aligned to the clock (a 60 s poll fires
at :00; ``agent.poll.poll_clock``, whose thread also writes the health report every second); the
housekeeping look, sealing, pruning and a listening device's retries each run on a thread of
their own (``agent.support.ticker``).
The devices (``agent.runtime.devices``) and transports (``agent.runtime.delivery``) are
kept apart, so that a reload (``agent.runtime.reload``) replaces only what changed. Sealing runs
every ``buffer.seal_interval_s`` and wakes the senders. ``stop`` lets running polls finish
(storing what waits in memory for ``STOP_STORE_S`` at most), seals what they stored, gives
in-flight sends a grace period, and leaves everything else queued
on disk.

Once a second, on the housekeeping thread after its own look, the health-record job looks
whether a health record is due (every ``[health] interval_s``, or a device's or transport's
state changed; ``agent.records.health``).
A poll that cannot start on time is recorded as a hole (``agent.poll.poller``); ``check`` tells the
service (``agent.service``) whether every worker is alive and making progress.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent.buffer import Buffer
from agent.config.model import Config
from agent.poll.poll_clock import POLL_INSTANCES, PollClock, aligned_start  # noqa: F401 (re-exported)
from agent.poll.poller import Poller
from agent.protocol.keys import load_private_key
from agent.protocol.signer import Signer
from agent.records import descriptor
from agent.records.identities import Identities
from agent.records.maintenance.watch import MaintenanceWatch
from agent.records.rotation.record import KeyRotation
from agent.runtime import health_records, pruning
from agent.runtime.delivery import Delivery
from agent.runtime.devices import Devices
from agent.runtime.health_report import HealthReport
from agent.runtime.housekeeping import EVERY_S, Housekeeping
from agent.runtime.reload import make_web, reload_in_place
from agent.runtime.seal_desk import SealDesk
from agent.runtime.view import AgentView
from agent.seal.batch_size import BatchSizer
from agent.seal.sealing import Sealer
from agent.send.sender import Sender
from agent.support.clock import Clock, SystemClock
from agent.support.clock_sync import clock_synchronized
from agent.support.instance_lock import InstanceLock
from agent.support.logs import event
from agent.support.ticker import Ticker, in_turn
from agent.support.workers import Workers
from agent.transports import PeriodFileTransport
from core.batch import SealedBatch
from drivers import Driver, ListeningDriver

if TYPE_CHECKING:
    from agent.web.server import WebServer

log = logging.getLogger("agent")
PRUNE_EVERY_S = 3600
HEALTH_EVERY_S = 1.0
MAX_WORKERS = 20
STUCK_S = 120.0  # a worker without progress this long stops the watchdog pings
STOP_STORE_S = 5.0  # a stop stores the polls waiting in memory for this long at most
# The housekeeping looks' tick this near (ticks fall .35 s past whole seconds) runs right after
# the polls' commit instead: on a wake-up already paid for (``Ticker.ride``). The seal gained
# nothing measurable riding (bench/RESULTS.md, session 14) and keeps its own tick.
RIDE_S = 0.5


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
        sizer = BatchSizer.from_config(config.buffer)  # larger batches after an outage
        # The chain names the key in force: a rotation a crash interrupted is finished here, a
        # key the chain does not name is refused (agent.records.rotation.record).
        self.rotation = KeyRotation(config.signing.key, self.buffer, self.sealer)
        self.rotation.settle()
        self.signer = self.sealer.signer
        self.poller = Poller(
            self.buffer, self.clock, getattr(self.clock, "synchronized", clock_synchronized)
        )
        self.workers = Workers()
        self.devices = Devices(
            config.devices, self.poller, self._make_polls(config), self.workers, self._stuck
        )
        self.identities = Identities()  # what the devices state about themselves (descriptor)
        self.poller.after_read = functools.partial(self.identities.after_poll, self)
        self.maintenance = MaintenanceWatch(
            self.buffer.maintenance, self.clock, self.devices.channels(), self.request_record
        )
        self.poller.status_filter = self.maintenance.accept
        self.delivery = Delivery(
            config.transports,
            self.buffer,
            config.buffer.path,
            config.station.id,
            self.clock,
            self.workers,
            self._stuck,
        )
        self.desk = SealDesk(self.sealer, sizer, lambda: self.delivery.senders, self.poller)
        self.poller.on_stored = functools.partial(_after_commit, self)
        self._health = HealthReport(
            config.buffer.path,
            self.poller,
            self.delivery,
            lambda: self.devices.not_started,
            lambda: self.desk.error,
        )
        self.tickers: dict[str, Ticker] = {}  # the timed duties, made in start()
        self._stopped = threading.Event()
        self.housekeeping = Housekeeping(
            self.buffer,
            self.maintenance,
            self.rotation,
            self.desk.lock,
            lambda: [s.name for s in self.delivery.senders],
            self._record_sealed,
        )
        self.health_records, self._health_figures = health_records.make(self)
        self.stuck_s = STUCK_S  # no progress this long: stuck (the service sets its watchdog)
        self.view = AgentView(self)  # all the page and /metrics read; the health file too
        self.web: WebServer | None = make_web(self.view, config)  # the page, when configured

    def _make_polls(self, config: Config) -> PollClock:
        """Polls: at most room per device for its poll and one late run behind it (a slow
        device must not delay another's poll; capped, since devices on one serial bus take
        turns anyway); the clock's thread also writes the health report: it never waits for
        the buffer or a device, and riding on the polls' wake-ups costs no wake-up of its own."""
        helpers = min(MAX_WORKERS, len(config.devices) * POLL_INSTANCES)
        self.polls = PollClock(
            self.poller,
            self.clock,
            self.workers,
            helpers,
            beat=self.write_health,
            beat_s=HEALTH_EVERY_S,
        )
        return self.polls

    def _stuck(self) -> float:
        return self.stuck_s

    @property
    def drivers(self) -> list[Driver | ListeningDriver]:
        """Every configured device's driver, in configuration order."""
        return self.devices.drivers

    @property
    def not_started(self) -> dict[str, str]:
        """Listening device -> why it could not start."""
        return self.devices.not_started

    @property
    def senders(self) -> list[Sender]:
        return self.delivery.senders

    @property
    def file_transports(self) -> list[PeriodFileTransport]:
        return self.delivery.file_transports

    def reload(self, config: Config) -> list[str]:
        """See ``agent.runtime.reload.reload_in_place``."""
        return reload_in_place(self, config)

    def start(self) -> None:
        """Seal the descriptor if it changed, open devices, start senders and the timed duties;
        returns at once."""
        cfg = self.config
        # Python's GIL switch interval (5 ms) is kept: at 1 ms, polls waiting for the GIL woke
        # five times as often, ~10 % more CPU; the seal's pauses between full batches keep the
        # polls of 50 devices on time without it (bench/RESULTS.md).
        self.devices.open_polled()
        self.identities.read(self.drivers)  # what the opened devices state (SDI-12 aI!)
        descriptor.seal_if_changed(self)  # before any reading of this config is sealed
        self.maintenance.start()  # before the first reading: windows lasting across a restart
        self.devices.start(opened=True)
        self.delivery.start()
        seal_s, full = cfg.buffer.seal_interval_s, self.desk.seal_full  # full: as they fill
        self.add_job(self.seal_and_wake, seal_s, "seal", nudged=full)
        self.add_job(self.prune, PRUNE_EVERY_S, "prune")
        # Both looks each second on one thread, riding on the polls' commits (_after_commit).
        looks = {"housekeeping": self.housekeeping.run, "health_record": self.health_records.run}
        self.add_job(in_turn(looks), EVERY_S, "housekeeping", ride_s=RIDE_S)
        self.workers.loop("health", self.stuck_s, lambda: self._health.beat)
        self.write_health()  # `status` says "running" from the first moment, not a second later
        for ticker in list(self.tickers.values()):
            ticker.start()
        self.polls.start()
        if self.web is not None:
            self.web.start()
        _log_started(self)

    def add_job(self, fn, interval_s: float, job_id: str, *, nudged=None, ride_s=None) -> Ticker:
        """Duty ``job_id``: ``fn()`` every ``interval_s`` (``nudged()`` when nudged; ``ride_s``:
        ``Ticker``); a run lasting over twice that (at least ``stuck_s``) is stuck."""
        limit = max(self.stuck_s, 2 * interval_s)
        ticker = Ticker(job_id, interval_s, fn, self.workers, limit, nudged=nudged, ride_s=ride_s)
        self.tickers[job_id] = ticker
        return ticker

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
        """See ``SealDesk.seal_and_wake``."""
        return self.desk.seal_and_wake(final)

    def stated(self) -> dict[str, dict[str, Any] | None]:
        """What each device stated about itself (``agent.records.identities``), by device."""
        return self.identities.stated

    def request_record(self, kind: str, body: dict[str, Any]) -> SealedBatch:
        """See ``SealDesk.request_record``."""
        return self.desk.request_record(kind, body)

    @property
    def sealed(self) -> int:
        """Batches sealed since start."""
        return self.desk.sealed

    def _record_sealed(self) -> None:
        """Housekeeping sealed a record (a rotation: the signer changed)."""
        self.signer = self.sealer.signer
        self.desk.wake()

    def health(self) -> dict[str, Any]:
        """See ``HealthReport.report``."""
        return self._health.report()

    def write_health(self) -> None:
        self._health.write(self.view.health())

    def prune(self) -> int:
        """See ``agent.runtime.pruning.prune``."""
        senders, days = [s.name for s in self.senders], self.config.buffer.retention_days
        deleted = pruning.prune(self.buffer, self.clock, days, senders, self.file_transports)
        descriptor.reseal_if_pruned(self)
        return deleted

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop cleanly: finish polls, seal, let in-flight sends finish, close everything."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.web is not None:
            self.web.stop()
        self.polls.shutdown(time.monotonic() + STOP_STORE_S)  # a backlog must not hold it
        for ticker in list(self.tickers.values()):
            ticker.stop()
        self._health_figures.close()
        self.devices.stop_listening()  # no more pushed readings once we seal the last batch
        self.poller.flush()
        self.maintenance.refresh()  # the records of windows that ended meanwhile
        self.seal_and_wake(final=True)
        self._health.stopping()
        self.delivery.stop(grace_s, time.monotonic() + grace_s)
        self.devices.close_polled()
        backlog = {s.name: s.buffer.first_pending_seq(s.name) for s in self.senders}
        self.buffer.close()
        self._health.stopped(self.view.health())
        if self._own_lock:
            self.lock.release()
        event(
            log,
            logging.INFO,
            "agent_stopped",
            **{f"first_unacked_{k}": v for k, v in backlog.items()},
        )
        _log_lost(self.poller)


def _after_commit(agent: Agent) -> None:
    """After each commit of polls (on the poll worker's thread): the seal desk counts the
    readings; the duties that may ride on this wake-up (the housekeeping looks) do when their
    tick is near."""
    agent.desk.stored(agent.tickers.get("seal"))
    for ticker in list(agent.tickers.values()):
        ticker.ride()


def _log_lost(poller: Poller) -> None:
    """The polls the buffer could not take (full disk, behind) before the stop's deadline."""
    if poller.waiting():
        readings = poller.waiting_readings()
        event(
            log, logging.ERROR, "readings_lost_at_stop", polls=poller.waiting(), readings=readings
        )


def _log_started(agent: Agent) -> None:
    """The journal's line for a started agent: station, key, devices, transports, buffer."""
    names = [s.name for s in agent.senders] + [t.name for t in agent.file_transports]
    event(
        log,
        logging.INFO,
        "agent_started",
        station=agent.config.station.id,
        kid=agent.signer.kid,
        devices=len(agent.drivers),
        transports=",".join(names),
        buffer=str(agent.config.buffer.path),
    )
