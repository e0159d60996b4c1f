"""``station-agent probe``: read every channel of configured devices once and show the wire.

Works for any polled driver: one implementing ``Probeable`` shows its request plan and raw
data; any other is read with ``read()`` and shown without them. A listening driver is probed
when it implements ``Probeable`` and ``open``/``close`` (HJ 212: listen a while, show what came).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol, TypeGuard, runtime_checkable

from core.errors import DeviceError
from drivers.base import Channel, Driver, Probeable, ProbeRow

COLUMNS = ("channel", "raw", "value", "unit", "status", "error")


@runtime_checkable
class Openable(Protocol):
    """What probe opens and closes: every polled driver, and listening drivers that can be
    probed."""

    name: str
    channels: list[Channel]

    def open(self) -> None: ...

    def close(self) -> None: ...


def can_probe(driver: object) -> TypeGuard[Openable]:
    """Whether ``probe_device`` can show this driver: polled, or probeable and openable."""
    return isinstance(driver, Driver) or (
        isinstance(driver, Probeable) and isinstance(driver, Openable)
    )


def probe_device(driver: Openable) -> tuple[list[str], list[ProbeRow]]:
    """(request plan lines, one row per channel) for one device; never raises DeviceError."""
    time_ms = int(time.time() * 1000)
    try:
        driver.open()
    except DeviceError as exc:
        return [], [ProbeRow(c.param, "", None, c.unit, "02", str(exc)) for c in driver.channels]
    try:
        if isinstance(driver, Probeable):
            rows = driver.probe(time_ms)
            return driver.plan(), rows  # after the read: the plan it learned from the device
        if not isinstance(driver, Driver):
            raise TypeError(f"{driver.name}: neither probeable nor polled")
        try:
            readings = driver.read(time_ms)
        except DeviceError as exc:
            rows = [ProbeRow(c.param, "", None, c.unit, "02", str(exc)) for c in driver.channels]
            return [], rows
        rows = [ProbeRow(r.param, "-", r.value, r.unit, r.status, r.error) for r in readings]
        return [], rows
    finally:
        driver.close()


def render(name: str, driver_name: str, plan: Sequence[str], rows: Sequence[ProbeRow]) -> str:
    """The text ``probe`` prints for one device."""
    lines = [f"device {name!r} ({driver_name})"]
    if plan:
        lines.append("request plan:")
        lines.extend(f"  {step}" for step in plan)
    else:
        lines.append("request plan: (not shown by this driver)")
    errors = {r.error for r in rows}
    shared = errors.pop() if len(rows) > 1 and len(errors) == 1 else None
    table = [COLUMNS] + [
        (
            r.channel,
            r.raw,
            "null" if r.value is None else repr(r.value),
            r.unit,
            r.status,
            "(see below)" if shared else (r.error or ""),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS) - 1)]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    if shared:  # the whole device failed: say it once
        lines.append(f"every channel: {shared}")
    return "\n".join(lines)
