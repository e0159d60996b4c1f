"""The driver interface: open, read (a list of readings, each with its status), close."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import ConfigDict, Field, model_validator

from core.model import Model
from core.reading import Reading


def _text() -> Any:
    return Field(default="", max_length=128)


class LimitConfig(Model):
    """A limit value a channel is judged against (the QCVN limit its permit names)."""

    model_config = ConfigDict(extra="forbid")

    max: float | None = Field(default=None, allow_inf_nan=False)
    """Upper limit, in the channel's unit."""
    min: float | None = Field(default=None, allow_inf_nan=False)
    """Lower limit (e.g. pH 5.5), in the channel's unit."""
    standard: str = Field(default="", max_length=128)
    """The regulation and column the limit comes from, e.g. ``QCVN 19:2009/BTNMT B``."""

    @model_validator(mode="after")
    def _some_bound(self) -> LimitConfig:
        if self.max is None and self.min is None:
            raise ValueError("a limit needs max, min or both")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class DeviceConfig(Model):
    """Keys common to every device section of the configuration."""

    model_config = ConfigDict(extra="forbid")

    source: ClassVar[Literal["device", "file"]] = "device"
    """Where the readings come from, for the station descriptor (``file``: the files driver)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    """Device name, used in readings, logs and status: letters, digits, ``_ . -``."""
    driver: str
    """The driver that reads the device."""
    poll_interval_s: float = Field(default=60.0, gt=0, le=86400)
    """Seconds between polls; polls are aligned to the clock (60 fires at every minute's :00)."""
    make: str = _text()
    """Manufacturer of the analyzer (station descriptor; optional)."""
    model: str = _text()
    """Model of the analyzer (station descriptor; optional)."""
    serial_number: str = _text()
    """Serial number of the analyzer (station descriptor; optional)."""
    principle: str = _text()
    """Measuring principle, e.g. ``NDIR``, ``UV fluorescence`` (station descriptor; optional)."""
    range: str = _text()
    """Measuring range as the maker states it, e.g. ``0-500 mg/Nm3`` (descriptor; optional)."""
    limits: dict[str, LimitConfig] = Field(default_factory=dict)
    """Limit values per param of this device: ``[devices.limits] SO2 = {max = 500, standard =
    "QCVN 19:2009/BTNMT B"}``; every key must be a param of one of the device's channels."""

    def channel_units(self) -> list[tuple[str, str]]:
        """(param, unit) of every channel the device's readings are stored under."""
        return [(c.param, c.unit) for c in getattr(self, "channels", ())]

    def catalogue_units(self) -> list[tuple[str, str]]:
        """(param, unit) the parameter catalogue checks: the channels as configured (a driver
        whose stored params are derived from them, like HJ 212's hourly ``SO2_Avg_hour``,
        names the configured ones)."""
        return self.channel_units()

    @model_validator(mode="after")
    def _limits_name_channels(self) -> DeviceConfig:
        params = {p for p, _ in self.channel_units()}
        unknown = sorted(set(self.limits) - params)
        if unknown:
            raise ValueError(
                f"limits: {', '.join(repr(p) for p in unknown)} is not a param of device "
                f"{self.name!r} (its params: {', '.join(sorted(params)) or 'none'})"
            )
        return self


@dataclass(frozen=True, slots=True)
class Channel:
    """What a device measures on one channel: the parameter name and its unit."""

    param: str
    unit: str


@runtime_checkable
class Driver(Protocol):
    """A device the agent polls.

    ``read`` returns one reading per channel, stamped ``time_ms``. A channel that failed gives
    ``value=None, status="02"`` and an ``error``. If the whole device is unreachable, ``read``
    raises ``DeviceError`` with a technician-readable message; the poller then records a fault
    reading for every channel in ``channels``.
    """

    name: str
    channels: list[Channel]

    def open(self) -> None: ...

    def read(self, time_ms: int) -> list[Reading]: ...

    def close(self) -> None: ...


Deliver = Callable[[list[Reading]], None]


@runtime_checkable
class ListeningDriver(Protocol):
    """A device that sends its data by itself (a datalogger pushing packets) instead of being
    polled.

    ``start(deliver)`` begins listening (or connecting) in the driver's own threads and returns at
    once; each time readings arrive the driver calls ``deliver(readings)``, which returns only
    when they are committed to the buffer (or queued in memory when the disk is full), so a
    driver may acknowledge its device after ``deliver`` returns. ``stop`` ends the threads.
    The daemon tells the two kinds apart by ``isinstance(driver, ListeningDriver)``.
    """

    name: str
    channels: list[Channel]

    def start(self, deliver: Deliver) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ProbeRow:
    """One channel as ``station-agent probe`` shows it: what came off the wire and what it means."""

    channel: str
    raw: str  # e.g. "0x4144 0xCCCD" for registers, the received line for a serial sensor
    value: float | int | str | None
    unit: str
    status: str
    error: str | None = None
    notes: tuple[str, ...] = ()  # hints for the technician, e.g. the value in other byte orders


@runtime_checkable
class Probeable(Protocol):
    """Optional driver extension for ``station-agent probe``: one read with the raw data shown."""

    def plan(self) -> list[str]:
        """The requests one poll makes, one line each (e.g. 'FC3 unit 1 registers 0-11')."""
        ...

    def probe(self, time_ms: int) -> list[ProbeRow]:
        """Read every channel once; never raises for device faults (they go in ``error``)."""
        ...

    # Optional, looked up with getattr: ``advice() -> list[str]``, what the driver learned
    # about the device that the configuration should say (e.g. a range the device refuses).


@runtime_checkable
class Identifying(Protocol):
    """Optional driver extension for the station descriptor: what the device states about
    itself (e.g. each SDI-12 sensor's ``aI!`` answer), beside what the configuration says."""

    def identity(self) -> dict[str, Any] | None:
        """Keys for the device's entry in the station descriptor (``sensors``), as the device
        stated them at its last connection; None: nothing stated. Called by the thread that
        polls the device, once it is opened and after every poll: a driver may ask its device
        here, once per connection (so a reconnect asks again), and never raises."""
        ...


@runtime_checkable
class WireCounters(Protocol):
    """Optional driver extension for the station page and ``/metrics``: what a register-based
    driver saw on the wire. Both are cheap reads of counters the driver keeps anyway."""

    def raw_registers(self) -> dict[str, str]:
        """Per channel, the raw words of its last answer ('' if its last read failed)."""
        ...

    def request_counts(self) -> tuple[int, dict[str, int]]:
        """(requests sent, failed requests by kind, e.g. {'timeout': 3, 'exception_2': 1})."""
        ...
