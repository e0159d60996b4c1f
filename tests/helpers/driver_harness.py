"""Simulated devices for the driver cases (``tests/drivers/test_driver_cases.py``), one entry per
driver.

A harness starts the device described by a case's ``simulator.toml`` and says what the
placeholders of the case's files stand for (``{port}``, ``{host}``). It lives in the tests, not
in ``drivers/``: drivers never import ``simulators``. A new driver adds one entry to
``HARNESSES``, keyed by its driver name (the ``driver`` key of its device sections).
"""

from __future__ import annotations

import socket
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulators.ascii_sensor import AsciiSensorSimulator
from simulators.hj212_script import ScriptedDatalogger, load_writes
from simulators.modbus_description import load_description
from simulators.modbus_rtu import ModbusRtuSimulator
from simulators.modbus_server import ModbusTcpSimulator
from simulators.sdi12 import Sdi12BusSimulator


@dataclass
class Simulated:
    """A running simulated device, as the case runner sees it."""

    placeholders: dict[str, str | int]
    """Placeholder name (without braces) -> what it stands for in the case's files."""
    requests: Callable[[], int]
    """Requests the device received so far (``requests`` in expected.toml)."""
    log: Callable[[], str] = lambda: ""
    """What the device saw, for failure messages."""
    send: Callable[[Any], None] = field(default=lambda driver: None)
    """For listening drivers: make the device send its data to the started driver (given);
    returns once the driver has handled all of it."""
    replies: Callable[[], list[str]] | None = None
    """For a device that sends: what the agent sent back, in the harness's words (``replies``
    in expected.toml; checked for every case when the harness has it)."""


# simulator.toml, the case's [[devices]] sections (placeholders not yet filled), a scratch folder
Harness = Callable[[Path, list[dict[str, Any]], Path], AbstractContextManager[Simulated]]


@contextmanager
def _modbus_rtu(
    description_file: Path, devices: list[dict[str, Any]], tmp: Path
) -> Iterator[Simulated]:
    description = load_description(description_file)
    simulator = ModbusRtuSimulator(
        description.devices, path=tmp / "ttyUSB0", line=description.line, faults=description.faults
    )
    simulator.absent_exception = description.absent_exception
    simulator.start()
    try:
        yield Simulated(
            {"port": simulator.path},
            lambda: sum(simulator.requests.values()),
            lambda: str(simulator.log),
        )
    finally:
        simulator.stop()


@contextmanager
def _modbus_tcp(
    description_file: Path, devices: list[dict[str, Any]], tmp: Path
) -> Iterator[Simulated]:
    framers = {device.get("framer", "tcp") for device in devices}
    if len(framers) != 1:
        raise ValueError(f"one simulator serves one framer; the devices use {sorted(framers)}")
    description = load_description(description_file)
    simulator = ModbusTcpSimulator(
        devices=description.devices, faults=description.faults, framer=framers.pop()
    )
    simulator.absent_exception = description.absent_exception
    simulator.start()
    try:
        yield Simulated(
            {"host": "127.0.0.1", "port": simulator.port},
            lambda: sum(simulator.requests.values()),
            lambda: str(simulator.log),
        )
    finally:
        simulator.stop()


@contextmanager
def _serial_line(
    description_file: Path, devices: list[dict[str, Any]], tmp: Path
) -> Iterator[Simulated]:
    description = tomllib.loads(description_file.read_text())
    simulator = AsciiSensorSimulator(tmp / "ttySIM", description).start()
    try:
        yield Simulated(
            {"port": str(simulator.link)},
            lambda: simulator.requests,
            lambda: f"sent {simulator.sent}",
        )
    finally:
        simulator.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _hj212(script_file: Path, devices: list[dict[str, Any]], tmp: Path) -> Iterator[Simulated]:
    """The datalogger dials the agent: ``{host}:{port}`` is where the driver listens (a free
    loopback port). ``replies``: the CN of each packet the agent sent back."""
    (device,) = devices
    datalogger = ScriptedDatalogger(load_writes(script_file), device["mn"], device["password"])
    host, port = "127.0.0.1", _free_port()

    def send(driver: Any) -> None:
        def handled(qn: str) -> bool:
            return any(qn in seen.raw for seen in driver.session.recent)

        datalogger.send(host, port, handled, answers=device.get("answer", True))

    try:
        yield Simulated(
            {"host": host, "port": port},
            lambda: len(datalogger.replies()),
            lambda: repr(datalogger.data),
            send,
            datalogger.replies,
        )
    finally:
        datalogger.close()


@contextmanager
def _files(description_file: Path, devices: list[dict[str, Any]], tmp: Path) -> Iterator[Simulated]:
    """The datalogger writes the case's files into ``{folder}`` (``[[writes]]`` of
    simulator.toml, in order: ``source``, a file of the case; ``name``, default the same;
    ``upload = "rename"`` (written as NAME.tmp, then renamed) or ``"direct"``). ``send`` waits
    for the driver to have judged each write before the next. ``{ledger}``: a fresh ledger."""
    writes = tomllib.loads(description_file.read_text()).get("writes", [])
    folder = tmp / "incoming"
    folder.mkdir()
    written: list[str] = []

    def send(driver: Any) -> None:
        for index, write in enumerate(writes, start=1):
            data = (description_file.parent / write["source"]).read_bytes()
            target = folder / write.get("name", write["source"])
            target.parent.mkdir(parents=True, exist_ok=True)
            if write.get("upload", "rename") == "rename":
                (target.parent / (target.name + ".tmp")).write_bytes(data)
                (target.parent / (target.name + ".tmp")).rename(target)
            else:
                target.write_bytes(data)
            written.append(target.name)
            deadline = time.monotonic() + 10
            while driver.handled < index and time.monotonic() < deadline:
                time.sleep(0.01)

    yield Simulated(
        {"folder": str(folder), "ledger": str(tmp / "ledger.db")},
        lambda: len(written),
        lambda: f"written {written}",
        send,
    )


@contextmanager
def _sdi12(description_file: Path, devices: list[dict[str, Any]], tmp: Path) -> Iterator[Simulated]:
    """The sensors of ``simulator.toml`` on one pty bus (``simulators/sdi12.py``); ``{port}``:
    its symlink. ``requests``: commands seen on the bus."""
    simulator = Sdi12BusSimulator.from_file(tmp / "ttySDI", description_file).start()
    try:
        yield Simulated(
            {"port": str(simulator.link)},
            lambda: simulator.requests,
            lambda: f"sent {simulator.sent}",
        )
    finally:
        simulator.stop()


HARNESSES: dict[str, Harness] = {
    "sdi12": _sdi12,
    "files": _files,
    "hj212": _hj212,
    "modbus_rtu": _modbus_rtu,
    "modbus_tcp": _modbus_tcp,
    "serial_line": _serial_line,
}
