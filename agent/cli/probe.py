"""``station-agent probe``: read every channel of configured devices once and show the wire.

Works for any polled driver: one implementing ``Probeable`` shows its request plan and raw
data; any other is read with ``read()`` and shown without them. A listening driver is probed
when it implements ``Probeable`` and ``open``/``close`` (HJ 212: listen a while, show what came).
Under the table come the driver's hints: per channel (a float in every byte order when its value
looks wrong) and per device (``advice()``: e.g. a range the device refused and the
``forbidden`` entry to add).
``watch`` repeats the probe every few seconds, clearing the terminal, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TextIO, TypeGuard, runtime_checkable

from core.errors import AgentError, DeviceError
from core.reading import FAULT, rfc3339_ms

if TYPE_CHECKING:  # drivers (pydantic) imported where used: building the parser stays cheap
    from drivers.base import Channel, ProbeRow

COLUMNS = ("channel", "raw", "value", "unit", "status", "error")
CLEAR = "\033[H\033[2J"  # cursor home, clear screen


@dataclass
class DeviceProbe:
    """What one probe of one device showed."""

    plan: list[str]
    rows: list[ProbeRow]
    advice: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(r.error for r in self.rows)


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
    from drivers.base import Driver, Probeable

    return isinstance(driver, Driver) or (
        isinstance(driver, Probeable) and isinstance(driver, Openable)
    )


def probe_device(driver: Openable) -> DeviceProbe:
    """Read one device once: its request plan, one row per channel, the driver's advice; never
    raises DeviceError."""
    from drivers.base import Driver, Probeable, ProbeRow

    time_ms = int(time.time() * 1000)
    try:
        driver.open()
    except DeviceError as exc:
        rows = [ProbeRow(c.param, "", None, c.unit, FAULT, str(exc)) for c in driver.channels]
        return DeviceProbe([], rows)
    try:
        if isinstance(driver, Probeable):
            rows = driver.probe(time_ms)
            advice = getattr(driver, "advice", None)
            # after the read: the plan and the advice it learned from the device
            return DeviceProbe(driver.plan(), rows, list(advice()) if advice else [])
        if not isinstance(driver, Driver):
            raise TypeError(f"{driver.name}: neither probeable nor polled")
        try:
            readings = driver.read(time_ms)
        except DeviceError as exc:
            rows = [ProbeRow(c.param, "", None, c.unit, FAULT, str(exc)) for c in driver.channels]
            return DeviceProbe([], rows)
        rows = [ProbeRow(r.param, "-", r.value, r.unit, r.status, r.error) for r in readings]
        return DeviceProbe([], rows)
    finally:
        driver.close()


def render(name: str, driver_name: str, probe: DeviceProbe) -> str:
    """The text ``probe`` prints for one device."""
    rows = probe.rows
    lines = [f"device {name!r} ({driver_name})"]
    if probe.plan:
        lines.append("request plan:")
        lines.extend(f"  {step}" for step in probe.plan)
    else:
        lines.append("request plan: (not shown by this driver)")
    errors = {r.error for r in rows}
    shared = errors.pop() if len(rows) > 1 and len(errors) == 1 else None
    table = [COLUMNS] + [
        (
            r.channel,
            r.raw,
            _value(r.value),
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
    lines.extend(f"check: {note}" for r in rows for note in r.notes)
    lines.extend(f"advice: {text}" for text in probe.advice)
    return "\n".join(lines)


def _value(value: float | int | str | None) -> str:
    """As the payload carries it: null, 12.5, -123456, "SO2-A1"."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def probe_all(devices: Sequence[tuple[str, str, Openable]], out: TextIO | None = None) -> bool:
    """Probe each (name, driver name, driver) in turn, printing as it goes; True if any failed."""
    out = out or sys.stdout
    failed = False
    for index, (name, driver_name, driver) in enumerate(devices):
        probe = probe_device(driver)
        failed = failed or probe.failed
        print(("\n" if index else "") + render(name, driver_name, probe), file=out, flush=True)
    return failed


def watch(
    devices: Sequence[tuple[str, str, Openable]],
    every_s: float,
    out: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Probe every ``every_s`` seconds, clearing the terminal each time, until Ctrl-C."""
    out = out or sys.stdout
    clear = CLEAR if out.isatty() else ""
    start = time.monotonic()
    for tick in range(sys.maxsize):
        stamp = rfc3339_ms(int(time.time() * 1000))
        print(f"{clear}probe at {stamp}, every {every_s:g} s (Ctrl-C to stop)\n", file=out)
        probe_all(devices, out)
        sleep(max(0.0, start + (tick + 1) * every_s - time.monotonic()))


def _cmd_probe(args: argparse.Namespace) -> int:
    from agent.config.model import load_config
    from drivers import make_driver

    config = load_config(args.config)
    devices = [d for d in config.devices if args.device in (None, d.name)]
    if not devices:
        names = ", ".join(d.name for d in config.devices) or "none"
        raise AgentError(f"{args.config}: no device named {args.device!r} (devices: {names})")
    if args.watch is not None and args.watch <= 0:
        raise AgentError(f"probe: --watch needs a number of seconds above 0, not {args.watch}")
    drivers: list[tuple[str, str, Openable]] = []
    for device in devices:
        driver = make_driver(device)
        if not can_probe(driver):
            raise AgentError(
                f"{args.config}: device {device.name!r} ({device.driver}) pushes its readings "
                "and its driver cannot be probed"
            )
        drivers.append((device.name, device.driver, driver))
    # probe prints the drivers' advice itself; their warnings would repeat it on stderr
    quiet, level = logging.getLogger("drivers"), logging.getLogger("drivers").level
    quiet.setLevel(logging.ERROR)
    try:
        if args.watch is None:
            return 1 if probe_all(drivers) else 0
        watch(drivers, args.watch)
    except KeyboardInterrupt:
        if args.watch is None:
            raise
        print(flush=True)  # Ctrl-C is how --watch ends
    finally:
        quiet.setLevel(level)
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Add this command to the ``station-agent`` command line."""
    p = sub.add_parser(
        "probe",
        help="read every channel once: raw data, values, request plan",
        description="Read every channel of the configured devices once (the agent need not "
        "run; stop it first if it holds the serial port) and show the request plan, the raw "
        "registers, the decoded values and any error; then hints: a float that looks like a "
        "wrong byte order in all four orders, a range the device refused with the forbidden "
        "entry to add. Exit status 1 if a channel failed.",
    )
    p.add_argument("--config", required=True, help="the TOML configuration file")
    p.add_argument("--device", metavar="NAME", help="only this device (default: every device)")
    p.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=2.0,
        metavar="SECONDS",
        help="repeat every SECONDS (default 2), clearing the screen, until Ctrl-C",
    )
    p.set_defaults(func=_cmd_probe)
