"""The ``sdi12`` driver: polls the sensors of one SDI-12 bus (a polled ``Driver``).

One poll: every concurrent sensor (``C``) is started first (``aC!``; they measure at the same
time), then each ``M`` sensor in turn (``aM!``, wait for its service request at most the time
it announced), then the concurrent sensors' values are collected once each is ready
(``aD0!``, ``aD1!``… until the announced count). A sensor that fails (no answer after the
retries, a bad CRC every time, fewer values than announced) gives fault readings (02) for its
channels with the reason; a port that cannot be opened or written is a ``DeviceError``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import serial

from core.errors import DeviceError
from core.reading import FAULT, MEASURING, Reading
from drivers.base import Channel, ProbeRow
from drivers.sdi12.bus import Bus
from drivers.sdi12.config import Sdi12Config, Sdi12Sensor
from drivers.sdi12.protocol import (
    ADDRESSES,
    Identification,
    Sdi12Error,
    parse_identification,
    parse_start,
    parse_values,
)

MAX_DATA_COMMANDS = 10  # aD0! … aD9!


class Sdi12Driver:
    """The sensors of one bus, read once per poll."""

    def __init__(self, config: Sdi12Config) -> None:
        self.config = config
        self.name = config.name
        self.channels = [Channel(c.param, c.unit) for s in config.sensors for c in s.channels]
        self.bus: Bus | None = None
        self._port: serial.Serial | None = None
        self.identified: dict[str, Identification] = {}  # aI! answers, by address
        self._ask_identity = False  # the port was (re)opened: ask every sensor aI! again
        self.raw: dict[str, list[str]] = {}  # the data answers of the last poll, by address

    @property
    def counts(self) -> dict[str, int]:
        """Faults on the bus by reason: no_answer, garbled, crc, bad_answer, retry…"""
        return dict(self.bus.counts) if self.bus is not None else {}

    def open(self) -> None:
        """Open the adapter's port (7E1, 1200 baud by default)."""
        cfg = self.config
        try:
            self._port = serial.Serial(
                cfg.port,
                cfg.baudrate,
                bytesize=cfg.bytesize,
                parity=cfg.parity,
                stopbits=1,
                timeout=0,
                write_timeout=1,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceError(f"device {self.name!r}: cannot open {cfg.port}: {exc}") from None
        counts = self.bus.counts if self.bus is not None else None
        self.bus = Bus(
            self._port,
            wake=cfg.wake,
            first_byte_s=cfg.first_byte_s,
            line_timeout_s=cfg.line_timeout_s,
            retries=cfg.retries,
            break_idle_s=cfg.break_idle_s,
        )
        if counts is not None:
            self.bus.counts.update(counts)
        self._ask_identity = True

    def close(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            except (serial.SerialException, OSError):
                pass
            self._port = None

    def read(self, time_ms: int) -> list[Reading]:
        """One measurement of every sensor; DeviceError if the port fails."""
        if self._port is None:
            self.open()
        try:
            results = self._measure_all()
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise DeviceError(f"device {self.name!r}: {self.config.port}: {exc}") from None
        return [
            r for s in self.config.sensors for r in self._readings(s, results[s.address], time_ms)
        ]

    def _measure_all(self) -> dict[str, list[float] | str]:
        bus = self.bus
        assert bus is not None
        results: dict[str, list[float] | str] = {}
        self.raw = {}
        started: list[tuple[float, Sdi12Sensor, int]] = []
        for sensor in self.config.sensors:
            if sensor.concurrent:
                try:
                    start = self._start(sensor)
                    started.append((time.monotonic() + start[0], sensor, start[1]))
                except Sdi12Error as exc:
                    results[sensor.address] = str(exc)
        for sensor in self.config.sensors:
            if not sensor.concurrent:
                try:
                    seconds, count = self._start(sensor)
                    # the announced time, plus the adapter's latency for the request to arrive
                    wait = seconds + self.config.first_byte_s
                    if seconds > 0 and not bus.wait_service_request(sensor.address, wait):
                        bus.counts["no_service_request"] += 1
                    results[sensor.address] = self._collect(sensor, count)
                except Sdi12Error as exc:
                    results[sensor.address] = str(exc)
        for ready, sensor, count in sorted(started, key=lambda item: item[0]):
            wait = ready - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # the sensor said when its values are ready
            try:
                results[sensor.address] = self._collect(sensor, count)
            except Sdi12Error as exc:
                results[sensor.address] = str(exc)
        return results

    def _start(self, sensor: Sdi12Sensor) -> tuple[int, int]:
        assert self.bus is not None
        command = sensor.start_command()
        start = self.bus.command(
            command, lambda answer: parse_start(sensor.address, answer, sensor.concurrent)
        )
        if start.seconds > self.config.poll_interval_s:
            raise Sdi12Error(
                f"{command}: the sensor needs {start.seconds} s, more than poll_interval_s "
                f"{self.config.poll_interval_s:g}"
            )
        return start.seconds, start.count

    def _collect(self, sensor: Sdi12Sensor, count: int) -> list[float]:
        assert self.bus is not None
        values: list[float] = []
        raw = self.raw.setdefault(sensor.address, [])
        for index in range(MAX_DATA_COMMANDS):
            if len(values) >= count:
                break
            command = f"{sensor.address}D{index}!"
            check: Callable[[str], tuple[str, list[float]]] = lambda answer: (  # noqa: E731
                answer,
                parse_values(sensor.address, answer, sensor.crc),
            )
            answer, got = self.bus.command(command, check, data=True)
            raw.append(f"{command} {answer}")
            if not got:
                break
            values += got
        return values

    def _readings(
        self, sensor: Sdi12Sensor, result: list[float] | str, time_ms: int
    ) -> list[Reading]:
        out = []
        for ch in sensor.channels:
            if isinstance(result, str):
                error = f"sensor {sensor.address}: {result}"
                out.append(Reading(self.name, ch.param, ch.unit, time_ms, None, FAULT, error))
            elif ch.value > len(result):
                error = (
                    f"sensor {sensor.address}: gave {len(result)} value(s), "
                    f"value {ch.value} missing"
                )
                out.append(Reading(self.name, ch.param, ch.unit, time_ms, None, FAULT, error))
            else:
                value = result[ch.value - 1] * ch.scale
                out.append(Reading(self.name, ch.param, ch.unit, time_ms, value, MEASURING))
        return out

    # --- identification, scan, probe --------------------------------------------------------
    def identify(self, address: str) -> Identification:
        """``aI!``: the sensor's vendor, model, version (kept in ``identified``)."""
        if self._port is None:
            self.open()
        assert self.bus is not None
        found = self.bus.command(f"{address}I!", lambda a: parse_identification(address, a))
        self.identified[address] = found
        return found

    def identity(self) -> dict[str, Any]:
        """For the station descriptor: ``{"sensors": [...]}``, every configured sensor with
        its ``aI!`` answer (``null`` texts if it gave none), asked once per connection: on
        the first call after the port opened (a sensor that does not answer costs the
        standard's retries, once). With the port closed, what the last connection gave."""
        if self._port is not None and self._ask_identity:
            self._ask_identity = False
            self.identified = {}
            for sensor in self.config.sensors:
                try:
                    self.identify(sensor.address)
                except Sdi12Error:
                    pass  # listed without identification
                except (serial.SerialException, OSError):
                    self.close()  # the next poll reopens the port, and asks again
                    break
        return {"sensors": [_stated(s.address, self.identified.get(s.address))
                            for s in self.config.sensors]}  # fmt: skip

    def scan(self, addresses: str = ADDRESSES, retries: int = 0) -> list[tuple[str, str]]:
        """(address, identification or why not) of every address that answers ``a!``."""
        if self._port is None:
            self.open()
        assert self.bus is not None
        found = scan_bus(self.bus, addresses, retries)
        return [
            (address, who.text() if isinstance(who, Identification) else who)
            for address, who in found
        ]

    def plan(self) -> list[str]:
        cfg = self.config
        lines = [f"{cfg.port} {cfg.baudrate} {cfg.bytesize}{cfg.parity}1, wake: {cfg.wake}"]
        for sensor in cfg.sensors:
            try:
                who = self.identify(sensor.address).text()
            except Sdi12Error as exc:
                who = f"no identification ({exc})"
            lines.append(f"sensor {sensor.address}: {who}")
            lines.append(
                f"  {sensor.start_command()} then {sensor.address}D0!… "
                + ("(concurrent)" if sensor.concurrent else "(waits for its service request)")
            )
        return lines

    def probe(self, time_ms: int) -> list[ProbeRow]:
        """One poll with each sensor's raw answers; device faults go in ``error``."""
        try:
            readings = self.read(time_ms)
        except DeviceError as exc:
            return [ProbeRow(c.param, "", None, c.unit, "02", str(exc)) for c in self.channels]
        rows = []
        by_param = {c.param: s.address for s in self.config.sensors for c in s.channels}
        for r in readings:
            raw = "; ".join(self.raw.get(by_param[r.param], [])) or "(no data answer)"
            rows.append(ProbeRow(r.param, raw, r.value, r.unit, r.status, r.error))
        return rows


def _stated(address: str, who: Identification | None) -> dict[str, str | None]:
    """One sensor as the station descriptor lists it (``core.record_kinds.descriptor.Sensor``)."""
    if who is None:
        return dict.fromkeys(("sdi12_version", "vendor", "model", "version", "serial"), None) | {
            "address": address
        }
    return {
        "address": address,
        "sdi12_version": who.sdi12_version,
        "vendor": who.vendor,
        "model": who.model,
        "version": who.version,
        "serial": who.extra,
    }


def scan_bus(
    bus: Bus, addresses: str = ADDRESSES, retries: int = 0
) -> list[tuple[str, Identification | str]]:
    """Ask every address ``a!``; (address, its ``aI!`` identification or why it has none) for
    those that answer, in the order asked."""
    saved, bus.retries = bus.retries, retries
    found: list[tuple[str, Identification | str]] = []
    try:
        for address in addresses:

            def acknowledged(answer: str, address: str = address) -> str:
                if answer != address:
                    raise Sdi12Error(f"expected {address!r}, got {answer[:20]!r}")
                return answer

            try:
                bus.command(f"{address}!", acknowledged)
            except Sdi12Error:
                continue
            try:
                who = bus.command(f"{address}I!", functools.partial(parse_identification, address))
                found.append((address, who))
            except Sdi12Error as exc:
                found.append((address, f"no identification: {exc}"))
    finally:
        bus.retries = saved
    return found
