"""Modbus TCP driver: reads analyzer channels from holding or input registers.

Options of a ``modbus_tcp`` device section (every key is checked; a misspelt key is an error)::

    name             device name, used in readings and messages       (required)
    driver           "modbus_tcp"                                     (required)
    poll_interval_s  seconds between polls                            (default 60)
    host             IP address or host name of the device or gateway (required)
    port             TCP port, 1..65535                               (default 502)
    unit             Modbus unit id (slave id), 0..247                (default 1)
    timeout_s        seconds to wait for each answer, >0 and <=30     (default 1.0)
    retries          extra tries after a request got no answer, 0..10 (default 2)
    status           device-wide status register (optional):
      register         zero-based address of a uint16 status register
      function         "holding" or "input"                           (default "holding")
      map              register value -> status "00"/"01"/"02"; a value not in the map
                       gives "02"                          (default {0: "00", 1: "01", 2: "02"})
    channels         one entry per measured parameter (at least one):
      param            parameter name, unique within the device       (required)
      unit             unit of the value, e.g. "mg/Nm3"               (default "")
      register         zero-based address of the first register       (required)
      function         "holding" or "input"                           (default "holding")
      type             int16 uint16 int32 uint32 float32 int64 uint64 float64  (default float32)
      order            ABCD (big-endian), CDAB, BADC, DCBA            (default ABCD)
      scale, offset    value = raw * scale + offset                   (default 1, 0)
      status_register  this channel's status register; overrides ``status.register`` and is read
                       with ``status.function`` and ``status.map`` (or their defaults)

Status of a reading: from its status register through the map; "00" when no status register is
configured and the value was read; "02" with an ``error`` when the channel could not be read (a
Modbus exception, a NaN/infinite float).

If the device does not answer, ``read`` raises ``DeviceError`` after ``timeout_s * (retries + 1)``
seconds: each try waits ``timeout_s`` and the next try uses a new connection, so a late answer is
never taken for the answer to a later request. A refused connection fails at once; connecting
waits at most ``timeout_s``. After any ``DeviceError`` the next ``read`` reconnects, and a
connection the device dropped while idle is reopened once without an error.

Contiguous channels of one function, and contiguous status registers, are fetched in one request
each (at most 125 registers); if the device refuses such a request, each channel is read alone so
one bad address faults only its channel.
"""

from __future__ import annotations

import logging
import socket
import warnings
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from agent.errors import DeviceError
from agent.model import FAULT, MEASURING, Reading
from drivers.base import Channel, DeviceConfig
from drivers.modbus_codec import ByteOrder, RegisterType, decode_value, register_count

# pymodbus logs each request that got no answer at ERROR; our DeviceError carries the same fact
# once per poll. Only applied when nobody configured the "pymodbus" logger.
if logging.getLogger("pymodbus").level == logging.NOTSET:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

Function = Literal["holding", "input"]
StatusCode = Literal["00", "01", "02"]

MAX_REGISTERS_PER_REQUEST = 125
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


# "register" is the field's name in the field's words; it only hides ABCMeta.register.
warnings.filterwarnings(
    "ignore",
    message=r'Field name "register" in "(StatusConfig|ModbusChannel)" shadows',
    category=UserWarning,
)


class StatusConfig(BaseModel):
    """Where the device reports its status (measuring, calibrating, fault)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    register: int = Field(ge=0, le=65535)
    """Zero-based address of the uint16 status register."""
    function: Function = "holding"
    """Register table of the status registers: "holding" or "input"."""
    map: dict[int, StatusCode] = Field(default_factory=lambda: {0: "00", 1: "01", 2: "02"})
    """Register value -> status code; a value not in the map means "02" (fault)."""


class ModbusChannel(BaseModel):
    """One measured parameter and the registers that hold it."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    param: str = Field(min_length=1)
    """Parameter name (e.g. "SO2"), unique within the device."""
    unit: str = ""
    """Unit of the value after scaling (e.g. "mg/Nm3")."""
    register: int = Field(ge=0, le=65535)
    """Zero-based address of the first register (holding 40001 or input 30001 is 0)."""
    function: Function = "holding"
    """Register table: "holding" (function 3) or "input" (function 4)."""
    type: RegisterType = "float32"
    """Value type in the registers."""
    order: ByteOrder = "ABCD"
    """Byte order: ABCD big-endian, CDAB word swap, BADC byte swap, DCBA little-endian."""
    scale: float = Field(default=1.0, allow_inf_nan=False)
    """Multiplier applied to the raw value."""
    offset: float = Field(default=0.0, allow_inf_nan=False)
    """Added after scaling: value = raw * scale + offset."""
    status_register: int | None = Field(default=None, ge=0, le=65535)
    """This channel's status register; overrides the device-wide ``status.register``."""

    @model_validator(mode="after")
    def _registers_fit(self) -> ModbusChannel:
        last = self.register + register_count(self.type) - 1
        if last > 65535:
            raise ValueError(
                f"channel {self.param!r}: {self.type} at register {self.register} ends at "
                f"{last}, beyond the last register 65535"
            )
        return self


class ModbusTcpConfig(DeviceConfig):
    """A device (or gateway) answering Modbus TCP."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    driver: Literal["modbus_tcp"]
    host: str = Field(min_length=1)
    """IP address or host name of the device or gateway."""
    port: int = Field(default=502, ge=1, le=65535)
    """TCP port."""
    unit: int = Field(default=1, ge=0, le=247)
    """Modbus unit id (slave id) of the device."""
    timeout_s: float = Field(default=1.0, gt=0, le=30)
    """Seconds to wait for each answer, and for the connection."""
    retries: int = Field(default=2, ge=0, le=10)
    """Extra tries after a request got no answer."""
    status: StatusConfig | None = None
    """Device-wide status register; channels may override it with ``status_register``."""
    channels: list[ModbusChannel] = Field(min_length=1)
    """The measured parameters."""

    @model_validator(mode="after")
    def _params_unique(self) -> ModbusTcpConfig:
        first: dict[str, int] = {}
        for index, channel in enumerate(self.channels):
            if channel.param in first:
                raise ValueError(
                    f"device {self.name!r}: param {channel.param!r} appears in channels "
                    f"{first[channel.param]} and {index}; each param must be unique in a device"
                )
            first[channel.param] = index
        return self


@dataclass(frozen=True, slots=True)
class _Span:
    """A run of registers in one table: what one request reads, or what one channel needs."""

    function: Function
    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class _StatusSource:
    span: _Span
    map: dict[int, str]


def _plan(spans: set[_Span]) -> list[tuple[_Span, list[_Span]]]:
    """Merge contiguous or overlapping spans of one function into requests, with their members."""
    blocks: list[tuple[_Span, list[_Span]]] = []
    for span in sorted(spans, key=lambda s: (s.function, s.address, s.count)):
        if blocks:
            block, members = blocks[-1]
            end = max(block.end, span.end)
            if (
                span.function == block.function
                and span.address <= block.end
                and end - block.address <= MAX_REGISTERS_PER_REQUEST
            ):
                blocks[-1] = (_Span(block.function, block.address, end - block.address), members)
                members.append(span)
                continue
        blocks.append((span, [span]))
    return blocks


def _exception_text(code: int, span: _Span) -> str:
    name = EXCEPTION_NAMES.get(code, "unknown exception")
    return f"Modbus exception {code} ({name}) reading {span.function} register {span.address}"


class ModbusTcpDriver:
    """Polls one Modbus TCP device; not thread-safe (one poller calls it)."""

    def __init__(self, config: ModbusTcpConfig) -> None:
        self.config = config
        self.name = config.name
        self.channels = [Channel(c.param, c.unit) for c in config.channels]
        self._where = f"device {config.name!r} (unit {config.unit} at {config.host}:{config.port})"
        self._values = {
            c.param: _Span(c.function, c.register, register_count(c.type)) for c in config.channels
        }
        self._statuses = {c.param: self._status_source(c) for c in config.channels}
        spans = set(self._values.values())
        spans.update(s.span for s in self._statuses.values() if s is not None)
        self._requests = _plan(spans)
        self._client: ModbusTcpClient | None = None
        self._reused = False  # the open connection has answered a request

    def open(self) -> None:
        """Nothing to do up front: the connection is made by the first ``read``.

        A device that is down at start-up thus shows as fault readings, not a start-up failure.
        """

    def close(self) -> None:
        """Close the connection, if any; a later ``read`` reconnects."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def read(self, time_ms: int) -> list[Reading]:
        """Read every channel and its status; raise ``DeviceError`` if the device is unreachable."""
        try:
            results = self._fetch_all()
        except DeviceError:
            self.close()
            raise
        return [self._reading(c, results, time_ms) for c in self.config.channels]

    def _status_source(self, channel: ModbusChannel) -> _StatusSource | None:
        status = self.config.status
        register = channel.status_register
        if register is None and status is not None:
            register = status.register
        if register is None:
            return None
        function: Function = status.function if status is not None else "holding"
        mapping = dict(status.map) if status is not None else {0: "00", 1: "01", 2: "02"}
        return _StatusSource(_Span(function, register, 1), mapping)

    def _fetch_all(self) -> dict[_Span, list[int] | str]:
        """Registers of every needed span, or the error text of the span that failed."""
        results: dict[_Span, list[int] | str] = {}
        for block, members in self._requests:
            outcome = self._request(block)
            if isinstance(outcome, int) and len(members) > 1:
                # Find which member the device refuses; the others still get their values.
                for span in members:
                    single = self._request(span)
                    if isinstance(single, int):
                        single = _exception_text(single, span)
                    results[span] = single
                continue
            for span in members:
                if isinstance(outcome, int):
                    results[span] = _exception_text(outcome, span)
                else:
                    start = span.address - block.address
                    results[span] = outcome[start : start + span.count]
        return results

    def _request(self, span: _Span) -> list[int] | int:
        """Registers read, or the Modbus exception code the device answered.

        Each try after a silence uses a new connection: a late answer to the previous try would
        otherwise sit in the stream ahead of the next answers.
        """
        cfg = self.config
        tries = cfg.retries + 1
        attempt = 0
        while True:
            reused = self._client is not None and self._reused
            client = self._connect()
            read = (
                client.read_holding_registers
                if span.function == "holding"
                else client.read_input_registers
            )
            try:
                response = read(span.address, count=span.count, device_id=cfg.unit)
            except (ConnectionException, OSError) as exc:
                self.close()
                if reused:
                    continue  # devices and gateways drop idle connections: reconnect once
                raise DeviceError(
                    f"{self._where}: connection closed by the device during a request ({exc}) "
                    "— check the unit id and that the device accepts another Modbus TCP client"
                ) from None
            except ModbusIOException as exc:
                self.close()
                if "No response" not in str(exc):
                    raise DeviceError(f"{self._where}: unusable answer ({exc})") from None
                attempt += 1
                if attempt < tries:
                    continue
                raise DeviceError(
                    f"{self._where}: no answer in {cfg.timeout_s} s ({tries} "
                    f"{'try' if tries == 1 else 'tries'}) — check network, IP address, port, "
                    "unit id"
                ) from None
            except ModbusException as exc:
                self.close()
                raise DeviceError(f"{self._where}: unusable answer ({exc})") from None
            self._reused = True
            return self._registers(response, span)

    def _registers(self, response: ModbusPDU, span: _Span) -> list[int] | int:
        if response.isError():
            code = response.exception_code
            if code in (10, 11):
                raise DeviceError(
                    f"{self._where}: {_exception_text(code, span)} — the gateway cannot reach "
                    "the device: check the line behind the gateway and the unit id"
                )
            return code
        registers = list(response.registers)
        if len(registers) != span.count:
            raise DeviceError(
                f"{self._where}: answered {len(registers)} registers to a request for "
                f"{span.count} at {span.function} register {span.address} — check the unit id"
            )
        return registers

    def _connect(self) -> ModbusTcpClient:
        if self._client is not None:
            return self._client
        cfg = self.config
        check = "— check network, IP address, port"
        # pymodbus only logs why a connect failed, so open the socket here and hand it over.
        try:
            sock = socket.create_connection((cfg.host, cfg.port), timeout=cfg.timeout_s)
        except socket.gaierror as exc:
            raise DeviceError(
                f"{self._where}: cannot resolve host name {cfg.host!r} ({exc.strerror}) — check "
                "the host setting and DNS"
            ) from None
        except ConnectionRefusedError:
            raise DeviceError(
                f"{self._where}: connection refused — check that the device is on and serves "
                f"Modbus TCP on port {cfg.port}, and the IP address"
            ) from None
        except TimeoutError:
            raise DeviceError(
                f"{self._where}: no connection in {cfg.timeout_s} s {check}"
            ) from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise DeviceError(f"{self._where}: cannot connect ({reason}) {check}") from None
        # retries=0: the driver retries itself, on a new connection (see _request).
        client = ModbusTcpClient(cfg.host, port=cfg.port, timeout=cfg.timeout_s, retries=0)
        client.socket = sock
        self._client = client
        self._reused = False
        return client

    def _reading(
        self, channel: ModbusChannel, results: dict[_Span, list[int] | str], time_ms: int
    ) -> Reading:
        def make(value: float | None, status: str, error: str | None = None) -> Reading:
            return Reading(self.name, channel.param, channel.unit, time_ms, value, status, error)

        span = self._values[channel.param]
        registers = results[span]
        if isinstance(registers, str):
            return make(None, FAULT, registers)
        try:
            value = decode_value(
                registers, channel.type, channel.order, channel.scale, channel.offset
            )
        except ValueError as exc:
            return make(None, FAULT, f"{span.function} register {span.address}: {exc}")
        source = self._statuses[channel.param]
        if source is None:
            return make(value, MEASURING)
        status = results[source.span]
        if isinstance(status, str):
            return make(value, FAULT, f"status unknown: {status}")
        code = source.map.get(status[0])
        if code is None:
            return make(
                value,
                FAULT,
                f"status {status[0]} in {source.span.function} register {source.span.address} "
                "is not in the status map",
            )
        return make(value, code)
