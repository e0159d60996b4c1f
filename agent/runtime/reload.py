"""A configuration reload (SIGHUP) applied to the running agent: only what changed restarts.

The buffer, the sealer, the poll clock and the timed duties run on. Unchanged devices keep
their drivers, connections and poll slots (``agent.runtime.devices``), unchanged transports
their connection and in-flight batches (``agent.runtime.delivery``): no poll slot is skipped,
an MQTT client is not reconnected, a datalogger's session is not dropped, and nothing waits for
a warehouse that does not answer. The descriptor is sealed if it changed, after the last
reading of a replaced device and before the first of its successor
(``agent.records.descriptor``).

What the running agent cannot take in place — another station id, signing key or buffer file,
buffer durability or size cap — makes ``restart_needed`` say so; the service then replaces the
agent as a stop and a start would (``agent.service``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from agent.buffer import Buffer
from agent.config.model import Config
from agent.records import descriptor
from agent.records.maintenance.watch import MaintenanceWatch
from agent.runtime.delivery import Delivery
from agent.runtime.devices import Devices
from agent.runtime.seal_desk import SealDesk
from agent.seal.batch_size import BatchSizer
from agent.seal.sealing import Sealer
from agent.support.logs import event
from agent.support.ticker import Ticker
from agent.support.workers import Workers
from core.batch import SealedBatch

if TYPE_CHECKING:
    from agent.web.server import WebServer
    from agent.web.view import RuntimeView

log = logging.getLogger("agent")


class Running(Protocol):
    """What a reload changes of the running agent (``agent.runtime.agent.Agent``)."""

    config: Config
    buffer: Buffer
    sealer: Sealer
    desk: SealDesk
    devices: Devices
    delivery: Delivery
    maintenance: MaintenanceWatch
    workers: Workers
    tickers: dict[str, Ticker]
    stuck_s: float
    web: WebServer | None

    @property
    def view(self) -> RuntimeView: ...

    def seal_and_wake(self, final: bool = False) -> int: ...

    def add_job(
        self,
        fn: Callable[[], object],
        interval_s: float,
        job_id: str,
        *,
        nudged: Callable[[], object] | None = None,
    ) -> Ticker: ...

    def request_record(self, kind: str, body: dict[str, Any]) -> SealedBatch: ...

    def stated(self) -> dict[str, dict[str, Any] | None]: ...


_RESTART_FIELDS = ("path", "durability", "max_disk_mb")  # of [buffer]: the open file's


def make_web(view: RuntimeView, config: Config) -> WebServer | None:
    """The station page and /metrics over ``view`` when configured (imported only then:
    prometheus-client costs RSS)."""
    if config.web is None:
        return None
    from agent.web.server import WebServer

    return WebServer(view, config.web)


def restart_needed(old: Config, new: Config) -> str | None:
    """What in ``new`` the running agent cannot take in place (None: nothing)."""
    if new.station.id != old.station.id:
        return "station.id"
    if new.signing != old.signing:
        return "signing"
    for field in _RESTART_FIELDS:
        if getattr(new.buffer, field) != getattr(old.buffer, field):
            return f"buffer.{field}"
    return None


def reload_in_place(agent: Running, config: Config) -> list[str]:
    """Switch the running ``agent`` to ``config`` (``restart_needed`` said nothing); returns
    the devices and transports restarted. Raises (nothing changed) if a new device or
    transport cannot be built."""
    old = agent.config
    new_devices = agent.devices.prepare(config.devices)
    new_transports = agent.delivery.prepare(config.transports)
    agent.config = config
    agent.sealer.max_readings = config.buffer.max_readings_per_batch
    agent.sealer.payload_version = config.buffer.payload_version
    agent.desk.sizer = BatchSizer.from_config(config.buffer)
    if config.buffer.seal_interval_s != old.buffer.seal_interval_s:
        _replace_ticker(agent, "seal", config.buffer.seal_interval_s)
    changed = agent.devices.reload(
        config.devices, new_devices, lambda: descriptor.seal_if_changed(agent)
    )
    agent.maintenance.set_channels(agent.devices.channels())
    changed += agent.delivery.reload(config.transports, new_transports)
    if config.web != old.web:
        if agent.web is not None:
            agent.web.stop()
        agent.web = make_web(agent.view, config)
        if agent.web is not None:
            agent.web.start()
        changed.append("web")
    event(log, logging.INFO, "reloaded_in_place", restarted=",".join(changed) or "nothing")
    return changed


def _replace_ticker(agent: Running, name: str, interval_s: float) -> None:
    old = agent.tickers.pop(name)
    old.stop()
    agent.add_job(agent.seal_and_wake, interval_s, name, nudged=old.nudged).start()
