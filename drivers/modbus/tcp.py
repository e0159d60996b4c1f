"""Modbus TCP driver (``driver = "modbus_tcp"``), also for RTU frames over TCP (``framer``).

Options of a ``modbus_tcp`` device section (every key is checked; a misspelt key is an error)::

    name             device name, used in readings and messages       (required)
    driver           "modbus_tcp"                                     (required)
    poll_interval_s  seconds between polls                            (default 60)
    host             IP address or host name of the device or gateway (required)
    port             TCP port, 1..65535                               (default 502)
    framer           "tcp": Modbus TCP (MBAP header), the usual case;
                     "rtu": RTU frames with CRC over TCP, for serial device servers
                     ("RTU over TCP", "transparent" gateways)           (default "tcp")
    unit             Modbus unit id (slave id), 0..247                (default 1)
    timeout_s        seconds to wait for each answer (and to connect), >0 and <=30 (default 1.0)
    retries          extra tries after no / a garbled answer, 0..10   (default 2)
    request_delay_s  silence before each request on this host:port, 0..5 s   (default 0)
    max_gap          unused registers one request may read to save a request, 0..124
                     (coils and discrete inputs: 16 bits per register)  (default 10)
    forbidden        ranges no request may read across; a list of
                     { function = "holding", first = 40, last = 49 }  (default none)
    status           device-wide status (optional):
      register         zero-based address of the status register, coil or discrete input
      function         "holding", "input", "coil" or "discrete"        (default "holding")
      bit              use only this bit of the register, 0..15 (0 = least significant)
      map              status value -> "00"/"01"/"02"; a value not in the map gives "02"
                                                      (default {0: "00", 1: "01", 2: "02"})
    channels         one entry per measured parameter (at least one):
      param            parameter name, unique within the device       (required)
      unit             unit of the value, e.g. "mg/Nm3"               (default "")
      register         zero-based address of the first register (or coil / input) (required)
      function         "holding" (FC 3), "input" (FC 4), "coil" (FC 1), "discrete" (FC 2)
                                                                      (default "holding")
      type             int16 uint16 int32 uint32 float32 int64 uint64 float64, bit, string
                       (default float32; coils and discrete inputs are "bit")
      order            ABCD (big-endian), CDAB, BADC, DCBA            (default ABCD)
      bit              for type "bit" in a register: which bit, 0..15
      length           for type "string": registers (2 characters each); the text must be a
                       number, e.g. " 12.5"
      scale, offset    value = raw * scale + offset                   (default 1, 0)
      status_register  this channel's status register; overrides ``status.register`` and is read
                       with ``status.function`` and ``status.map`` (or their defaults)
      status_bit       this channel's bit in its status register; overrides ``status.bit``

Status of a reading: from its status register or bit through the map; "00" when no status is
configured and the value was read; "02" with an ``error`` when the channel could not be read (a
Modbus exception, a NaN/infinite float, text that is not a number).

pymodbus builds the requests and decodes the answers, framing them as MBAP or RTU (with CRC)
frames (``drivers/modbus/wire.py``). Devices with the same host and port share one connection
and take turns (one request at a time). If a device does not answer, ``read`` raises
``DeviceError`` after ``timeout_s * (retries + 1)`` seconds; with framer "tcp" each try after a
silence uses a new connection, so a late answer is never taken for the answer to a later
request. A refused connection fails at
once; reconnecting backs off as described in ``drivers/modbus/bus.py``; a connection the device
dropped while idle is reopened without an error. Requests are coalesced as described in
``drivers/modbus/plan.py`` (``station-agent probe`` shows the plan).
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from drivers.modbus.bus import TcpEndpoint
from drivers.modbus.config import ModbusChannel, ModbusDeviceConfig, StatusConfig
from drivers.modbus.driver import ModbusDriver


class ModbusTcpConfig(ModbusDeviceConfig):
    """A device (or gateway) answering Modbus TCP, or RTU frames over TCP."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    driver: Literal["modbus_tcp"]
    host: str = Field(min_length=1)
    """IP address or host name of the device or gateway."""
    port: int = Field(default=502, ge=1, le=65535)
    """TCP port."""
    framer: Literal["tcp", "rtu"] = "tcp"
    """"tcp" (MBAP header) or "rtu" (RTU frames with CRC, serial device servers)."""


class ModbusTcpDriver(ModbusDriver):
    """Polls one device over TCP."""

    def __init__(self, config: ModbusTcpConfig) -> None:
        super().__init__(config, TcpEndpoint(config.host, config.port, config.framer))


__all__ = ["ModbusChannel", "ModbusTcpConfig", "ModbusTcpDriver", "StatusConfig"]
