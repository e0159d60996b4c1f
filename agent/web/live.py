"""What the station page and ``/metrics`` show, gathered from the running agent and the buffer.

The buffer is read through its own read-only connection (``Buffer(path, read_only=True)``, as
``status`` does): the page never takes the agent's write lock nor changes the file. Live values
come from the poller's memory (each device's last poll); a Modbus device's raw registers and
request counters from its driver (``drivers.base.WireCounters``); clock sync from the kernel
(``agent.support.clock_sync``).

``maintenance`` gives the maintenance windows (``station-agent maintenance``): the same section
``status`` shows, ``{"active": [...], "recently_ended": [...]}``, each window with at least
``device``, ``reason`` and ``line`` (its one-line description), drawn by the page's Maintenance
panel.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.buffer import Buffer, DeviceState
from agent.support.clock_sync import MAX_ERROR_US, max_error_us
from drivers.base import WireCounters

if TYPE_CHECKING:
    from agent.web.view import RuntimeView

DAY_MS = 86_400_000
MAX_NAME = 200  # query parameters longer than this name nothing configured
MAX_LISTED_SEQS = 50  # quarantined batches listed per transport (the count is always whole)


def buffer_bytes(path: Path) -> int:
    """The buffer's size on disk: the database and its write-ahead log."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        try:
            total += path.with_name(path.name + suffix).stat().st_size
        except OSError:
            pass
    return total


def clock_state() -> dict[str, Any]:
    """Is the system clock synchronized (as ``status`` and ``timedatectl`` say)?"""
    error_us = max_error_us()
    return {
        "synchronized": None if error_us is None else error_us < MAX_ERROR_US,
        "max_error_s": None if error_us is None else round(error_us / 1e6, 3),
    }


def device_state(readings: list[Any], error: str | None) -> str:
    """``ok``, ``partial`` (some channels failing) or ``fault`` (none read)."""
    if error is None:
        return "ok"
    if readings and any(r.value is not None and r.status != "02" for r in readings):
        return "partial"
    return "fault"


class StationView:
    """Read-only figures of one running agent, for the page and the metrics."""

    def __init__(self, agent: RuntimeView) -> None:
        self.agent = agent
        self._buffer: Buffer | None = None
        self._lock = threading.Lock()

    def buffer(self) -> Buffer:
        """The read-only buffer (opened on first use: the agent has created the file by then)."""
        with self._lock:
            if self._buffer is None:
                self._buffer = Buffer(self.agent.config.buffer.path, read_only=True)
            return self._buffer

    def close(self) -> None:
        with self._lock:
            if self._buffer is not None:
                self._buffer.close()
                self._buffer = None

    def backlog(self) -> dict[str, dict[str, Any]]:
        """Per batch transport: backlog, oldest unacknowledged reading, last acknowledgement."""
        buffer = self.buffer()
        sealed_upto = buffer.chain.head()[2]
        unsealed = buffer.store.count(after_id=sealed_upto)
        out: dict[str, dict[str, Any]] = {}
        for sender in self.agent.senders:
            batches, readings, _oldest = buffer.ledger.backlog(sender.name)
            oldest_ms = buffer.ledger.oldest_unacked_reading_ms(sender.name)
            last = buffer.ledger.last_acked(sender.name)
            quarantined = [seq for seq, _ in buffer.ledger.quarantined(sender.name)]
            out[sender.name] = {
                "quarantined": len(quarantined),
                "quarantined_seqs": quarantined[:MAX_LISTED_SEQS],
                "backlog_batches": batches,
                "backlog_readings": readings + unsealed,
                "oldest_unacked_reading_ms": oldest_ms,
                "last_acked_seq": last[0] if last else None,
                "last_acked_at_ms": last[1] if last else None,
            }
        return out

    def live(self) -> dict[str, Any]:
        """Everything the station page shows except the charts."""
        agent, now_ms = self.agent, int(time.time() * 1000)
        health = agent.health()
        stored: dict[str, DeviceState] = self.buffer().devices.all()
        devices = []
        for dcfg, driver in zip(agent.config.devices, agent.drivers, strict=True):
            readings, error, at_ms = agent.poller.last.get(dcfg.name, ([], None, None))
            d = stored.get(dcfg.name)
            wire = driver if isinstance(driver, WireCounters) else None
            raw = wire.raw_registers() if wire else {}
            channels = [
                {"param": r.param, "unit": r.unit, "value": r.value, "status": r.status}
                | {"error": r.error, "raw": raw.get(r.param)}
                for r in readings
            ] or [
                {"param": c.param, "unit": c.unit, "value": None, "status": None, "error": None}
                | {"raw": None}
                for c in getattr(dcfg, "channels", ())
            ]
            requests, errors = wire.request_counts() if wire else (None, {})
            devices.append(
                {
                    "name": dcfg.name,
                    "driver": dcfg.driver,
                    "state": device_state(readings, error) if at_ms else "waiting",
                    "time_ms": at_ms,
                    "error": error,
                    "channels": channels,
                    "last_good_ms": d.last_good_ms if d else None,
                    "last_error": d.last_error if d else None,
                    "last_error_ms": d.last_error_ms if d else None,
                    "polls": d.polls if d else 0,
                    "faults": d.faults if d else 0,
                    "requests": requests,
                    "request_errors": errors,
                }
            )
        backlog = self.backlog()
        transports = []
        for tc in agent.config.transports:
            live = health["transports"].get(tc.name, {})
            transports.append(
                {"name": tc.name, "type": tc.type}
                | backlog.get(tc.name, {})
                | {
                    "connected": live.get("connected"),
                    "last_error": live.get("last_error"),
                    "failing_since_ms": live.get("failing_since_ms"),
                    "acked_since_start": live.get("acked"),
                }
            )
        path = agent.config.buffer.path
        disk = shutil.disk_usage(path.parent)
        return {
            "station": agent.config.station.id,
            "station_name": agent.config.station.name,
            "now_ms": now_ms,
            "started_at_ms": health["started_at_ms"],
            "storage_error": health["storage_error"],
            "missed_polls": health["missed_polls"],
            "clock": clock_state(),
            "actions": agent.config.web is not None and agent.config.web.actions_enabled,
            "maintenance": self.maintenance(),
            "signing": self.signing(),
            "devices": devices,
            "transports": transports,
            "disk": {
                "path": str(path.parent),
                "buffer_bytes": buffer_bytes(path),
                "free_bytes": disk.free,
                "total_bytes": disk.total,
            },
        }

    def maintenance(self) -> dict[str, list[dict[str, Any]]] | None:
        """Maintenance windows for the page's panel, as ``status`` shows them: lasting now, and
        ended in the last 24 h (``station-agent maintenance``)."""
        from zoneinfo import ZoneInfo

        from agent.status.maintenance import status_section

        return status_section(self.buffer(), ZoneInfo(self.agent.config.station.timezone))

    def signing(self) -> dict[str, Any]:
        """The signing key in force, a rotation asked for, old keys kept, and the descriptor in
        force: the ``signing_key`` and ``descriptor`` sections of ``status --json``."""
        from agent.status.key import key_section

        return key_section(self.buffer(), self.agent.config)

    def chart(self, device: str, param: str, unit: str, points: int) -> dict[str, Any]:
        """The last 24 h of one channel, averaged into at most ``points`` time slices."""
        now_ms = int(time.time() * 1000)
        start = now_ms - DAY_MS
        width = max(1, DAY_MS // points)
        sums: dict[int, list[float]] = {}
        faults: set[int] = set()
        for row in self.buffer().store.readings_between(start, now_ms + 1, [device]):
            if row.param != param or row.unit != unit:
                continue
            slot = (row.time_ms - start) // width
            if row.status == "02" or not isinstance(row.value, int | float):
                faults.add(slot)
                continue
            acc = sums.setdefault(slot, [0.0, 0])
            acc[0] += float(row.value)
            acc[1] += 1
        return {
            "device": device,
            "param": param,
            "unit": unit,
            "from_ms": start,
            "to_ms": now_ms,
            "slice_ms": width,
            "points": [[start + s * width, round(t / n, 4)] for s, (t, n) in sorted(sums.items())],
            "fault_ms": [start + s * width for s in sorted(faults)],
        }
