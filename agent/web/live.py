"""What the station page and ``/metrics`` show, gathered from the running agent and the buffer.

The buffer is read through its own read-only connection (``Buffer(path, read_only=True)``, as
``status`` does): the page never takes the agent's write lock nor changes the file. Live values
come from the poller's memory (each device's last poll); a Modbus device's raw registers and
request counters from its driver (``agent.web.view.DeviceLive``). Every other figure (clock
sync, backlog, device state, maintenance, key, missed polls) is a status section's
(``agent.status.sections``): the page shows what ``status`` says, in the same words.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agent.buffer import Buffer
from agent.status.sections import StationState, gather_all, merged
from core.reading import FAULT

if TYPE_CHECKING:
    from agent.web.view import RuntimeView

DAY_MS = 86_400_000
_PERIOD_ORDER = {"real-time": 0, "minute": 1, "hour": 2, "day": 3}  # HJ 212 rows, in this order
MAX_NAME = 200  # query parameters longer than this name nothing configured


def _channels(dcfg: Any, readings: Sequence[Any], raw: dict[str, Any]) -> list[dict[str, Any]]:
    """A device's channel rows: its last readings (an HJ 212 device's real-time values first,
    then minute, hour, day aggregates, each with its period and time), or, before the first,
    its configured channels."""
    periods: dict[str, str] = getattr(dcfg, "channel_periods", dict)()
    return [
        {"param": r.param, "unit": r.unit, "value": r.value, "status": r.status}
        | {"error": r.error, "raw": raw.get(r.param), "time_ms": r.time_ms}
        | {"period": periods.get(r.param)}
        for r in sorted(readings, key=lambda r: _PERIOD_ORDER.get(periods.get(r.param, ""), 0))
    ] or [
        {"param": c.param, "unit": c.unit, "value": None, "status": None, "error": None}
        | {"raw": None}
        for c in getattr(dcfg, "channels", ())
    ]


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

    def state(self) -> StationState:
        """The running agent's state as the sections read it: the buffer (read-only) and the
        health report the agent writes to its health file (``RuntimeView.health``)."""
        now_ms = int(time.time() * 1000)
        return StationState(self.buffer(), self.agent.config, self.agent.health(), True, now_ms)

    def sections(self) -> dict[str, Any]:
        """Every status section's figures (``agent.status.sections``), merged."""
        return merged(gather_all(self.state()))

    def live(self) -> dict[str, Any]:
        """Everything the station page shows except the charts: the status sections' figures,
        plus what only the running agent's memory holds (each device's last poll)."""
        agent, state = self.agent, self.state()
        figures = merged(gather_all(state))
        path = agent.config.buffer.path
        disk = shutil.disk_usage(path.parent)
        return {
            "station": agent.config.station.id,
            "station_name": agent.config.station.name,
            "timezone": agent.config.station.timezone,  # every time on the page is shown in it
            "now_ms": state.now_ms,
            "agent": figures["agent"],
            "started_at_ms": figures["agent"].get("started_at_ms"),
            "storage_error": figures["agent"].get("storage_error"),
            "missed_polls": figures["agent"].get("missed_polls"),
            "clock": figures["clock"],
            "actions": agent.config.web is not None and agent.config.web.actions_enabled,
            "maintenance": figures["maintenance"],
            "signing": {k: figures[k] for k in ("signing_key", "descriptor", "config")},
            "devices": self._devices(figures["devices"]),
            "transports": figures["transports"],
            "disk": {
                "path": str(path.parent),
                "buffer_bytes": figures["buffer_bytes"],
                "free_bytes": disk.free,
                "total_bytes": disk.total,
            },
        }

    def _devices(self, section: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The devices section, each with its last poll from the agent's memory: time, error,
        channels (value, status, raw registers) and a Modbus driver's request counters."""
        by_name = {d["name"]: d for d in section}
        configured = {d.name: d for d in self.agent.config.devices}
        out = []
        for live in self.agent.devices():
            channels = _channels(configured.get(live.name), live.readings, live.raw)
            out.append(
                by_name[live.name]
                | {
                    "driver": live.driver,
                    "time_ms": live.time_ms,
                    "error": live.error,
                    "channels": channels,
                    "requests": live.requests,
                    "request_errors": live.request_errors,
                }
            )
        return out

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
            if row.status == FAULT or not isinstance(row.value, int | float):
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
