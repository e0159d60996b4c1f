"""Several SDI-12 sensors on one bus, simulated on a pseudo-terminal.

The simulator holds the master side of a pty pair and points a symlink (``link``) at the slave
side: configure the driver's ``port`` with the symlink. Commands (``a!``, ``aI!``, ``aM!``,
``aMC!``, ``aM1!``…, ``aC!``, ``aCC!``, ``aDn!``) are answered by the sensor at address ``a``;
other addresses stay silent. ``aM!`` sends the service request (``a`` CR LF) when the values
are ready; ``aC!`` does not. A break cannot cross a pty: the simulated sensors are always awake.

Description (TOML or a dict)::

    echo = false              # the adapter echoes each command back (half-duplex)
    [[sensors]]
    address = "0"
    vendor = "ACME"; model = "LVL100"; version = "100"; serial = "SN42"
    values = [1.25, -3.5]     # the measurement's values (the same for every M/C variant)
    seconds = 0               # ttt announced by aM!/aC!
    per_answer = 3            # values per aDn! answer (more values need aD1!, aD2!…)
    no_answer_first = 0       # faults: the first N commands get no answer
    garbled_first = 0         #   the first N answers are garbled bytes
    bad_crc_first = 0         #   the first N data answers with CRC carry a wrong one
    service_request_late_s = 0  # the service request comes this long after ttt
    no_service_request = false  # it never comes
    service_request_at_data = false  # it comes so late: right before the answer to aD0!
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tomllib
import tty
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.sdi12.protocol import with_crc

GARBLE = b"\x8f\x01\xfe\x07#"
_KEYS = {
    "address", "vendor", "model", "version", "serial", "values", "seconds", "per_answer",
    "no_answer_first", "garbled_first", "bad_crc_first", "service_request_late_s",
    "no_service_request", "service_request_at_data",
}  # fmt: skip


@dataclass
class SimulatedSensor:
    """One sensor's answers and faults (plain attributes, changeable while running)."""

    address: str
    vendor: str = "STATION"
    model: str = "SIM012"
    version: str = "100"
    serial: str = ""
    values: list[float] = field(default_factory=lambda: [1.0])
    seconds: int = 0
    per_answer: int = 3
    no_answer_first: int = 0
    garbled_first: int = 0
    bad_crc_first: int = 0
    service_request_late_s: float = 0.0
    no_service_request: bool = False
    service_request_at_data: bool = False
    commands: list[str] = field(default_factory=list)  # every command it got
    ready_at: float = 0.0
    crc: bool = False
    measuring: bool = False

    def identification(self) -> str:
        return (
            f"{self.address}14{self.vendor:<8.8}{self.model:<6.6}{self.version:<3.3}"
            f"{self.serial[:13]}"
        )

    def data_answer(self, index: int) -> str:
        if time.monotonic() < self.ready_at:
            return self.address  # not ready: no values
        chunk = self.values[index * self.per_answer : (index + 1) * self.per_answer]
        body = self.address + "".join(_value(v) for v in chunk)
        if not self.crc:
            return body
        answer = with_crc(body)
        if self.bad_crc_first > 0:
            self.bad_crc_first -= 1
            wrong = chr(0x40 | ((ord(answer[-1]) + 1) & 0x3F))
            return answer[:-1] + wrong
        return answer


def _value(v: float) -> str:
    text = f"{v:+.6g}"
    return text if "e" not in text else f"{v:+.3f}"


class Sdi12BusSimulator:
    """The bus; ``start()``/``stop()`` or a ``with`` block."""

    def __init__(self, link: str | Path, description: dict[str, Any]) -> None:
        self.link = Path(link)
        self.echo = bool(description.get("echo", False))
        self.sensors: dict[str, SimulatedSensor] = {}
        for item in description.get("sensors", []):
            unknown = set(item) - _KEYS
            if unknown:
                raise ValueError(f"unknown sensor keys: {', '.join(sorted(unknown))}")
            sensor = SimulatedSensor(**item)
            self.sensors[sensor.address] = sensor
        self.requests = 0  # commands seen on the bus (any address)
        self.log: list[tuple[float, str]] = []  # (monotonic time, command) in order
        self.sent: list[bytes] = []
        self._master: int | None = None
        self._slave: int | None = None
        self._lock = threading.Lock()
        self._pending: list[tuple[float, bytes]] = []  # (due, bytes): service requests
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_file(cls, link: str | Path, path: Path) -> Sdi12BusSimulator:
        return cls(link, tomllib.loads(path.read_text()))

    def start(self) -> Sdi12BusSimulator:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        temporary = self.link.with_name(self.link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        os.symlink(os.ttyname(slave), temporary)
        os.replace(temporary, self.link)
        self._thread = threading.Thread(target=self._run, name="sdi12-bus", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def __enter__(self) -> Sdi12BusSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        received = bytearray()
        while not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                due = [data for when, data in self._pending if when <= now]
                self._pending = [(w, d) for w, d in self._pending if w > now]
            for data in due:
                self._send(data)
            waits = [0.05] + [max(0.0, w - now) for w, _ in self._pending]
            assert self._master is not None
            ready, _, _ = select.select([self._master], [], [], min(waits))
            if not ready:
                continue
            try:
                received += os.read(self._master, 4096)
            except OSError:
                continue
            while (end := received.find(b"!")) >= 0:
                command = bytes(received[: end + 1]).decode("ascii", "replace")
                del received[: end + 1]
                self._command(command)
            del received[:-256]

    def _command(self, command: str) -> None:
        self.requests += 1
        self.log.append((time.monotonic(), command))
        if self.echo:
            self._send(command.encode("ascii"))
        address = command[0]
        sensor = self.sensors.get(address)
        if sensor is None:
            return
        sensor.commands.append(command)
        with self._lock:  # any command ends a measurement: its service request is not sent
            self._pending = [(w, d) for w, d in self._pending if d != f"{address}\r\n".encode()]
        if sensor.no_answer_first > 0:
            sensor.no_answer_first -= 1
            return
        answer = self._answer(sensor, command[1:-1])
        if answer is None:
            return
        if sensor.garbled_first > 0:
            sensor.garbled_first -= 1
            self._send(GARBLE + answer.encode("ascii")[2:] + b"\r\n")
            return
        self._send(answer.encode("ascii") + b"\r\n")

    def _answer(self, sensor: SimulatedSensor, body: str) -> str | None:
        a = sensor.address
        if body == "":
            return a
        if body == "I":
            return sensor.identification()
        if body and body[0] in "MC":
            sensor.crc = body[1:2] == "C"  # aMC!, aCC!, aMC1!…
            sensor.ready_at = time.monotonic() + sensor.seconds
            count = len(sensor.values)
            if body[0] == "M":
                quiet = sensor.no_service_request or sensor.service_request_at_data
                if sensor.seconds > 0 and not quiet:
                    due = sensor.ready_at + sensor.service_request_late_s
                    with self._lock:
                        self._pending.append((due, f"{a}\r\n".encode()))
                return f"{a}{sensor.seconds:03d}{min(count, 9)}"
            return f"{a}{sensor.seconds:03d}{min(count, 99):02d}"
        if body[:1] == "D" and body[1:].isdigit():
            if body == "D0" and sensor.service_request_at_data and sensor.seconds > 0:
                return f"{a}\r\n{sensor.data_answer(0)}"
            return sensor.data_answer(int(body[1:]))
        return None

    def _send(self, data: bytes) -> None:
        with self._lock:
            if self._master is None:
                return
            try:
                os.write(self._master, data)
            except OSError:
                return
            self.sent.append(data)
