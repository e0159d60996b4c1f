"""Modbus RTU driver (``driver = "modbus_rtu"``): devices on an RS-485/RS-232 serial port.

Options of a ``modbus_rtu`` device section: every key of ``modbus_tcp`` (see
``drivers/modbus/tcp.py``: unit, timeout_s, retries, request_delay_s, max_gap, forbidden, status,
channels...) except host, port and framer, plus::

    port             serial port, e.g. "/dev/ttyUSB0" or a stable "/dev/serial/by-id/..." path
                                                                      (required)
    baudrate         1200..115200                                     (default 9600)
    parity           "N", "E" or "O"                                  (default "N")
    stopbits         1 or 2                                           (default 1)
    bytesize         7 or 8                                           (default 8)
    unit             Modbus unit id (slave id), 1..247                (default 1)
    request_delay_s  silence before each request on the port, 0..5 s  (default 0.02)

pymodbus builds the requests and decodes the answers, framing them as RTU frames with CRC
(``drivers/modbus/wire.py``); pyserial drives the port. Several devices (unit ids) on one port
share it: give them the same port and the same line settings (baudrate, parity, stopbits,
bytesize; a mismatch is a start-up error). Requests go one at a time; the port is silent for
the largest ``request_delay_s`` of its devices between two requests. A device that does not
answer holds the port for at most ``timeout_s`` per try and is tried once per poll while it
stays silent, so the others keep their readings.

If the adapter disappears (USB unplugged) the read fails with a ``DeviceError`` saying so; the
port is reopened by itself when the path returns (first retry at once, then backing off from
0.5 s to 30 s between attempts), without restarting the agent.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from drivers.modbus.bus import SerialEndpoint
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.driver import ModbusDriver

BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


class ModbusRtuConfig(ModbusDeviceConfig):
    """A device answering Modbus RTU on a serial port."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    driver: Literal["modbus_rtu"]
    port: str = Field(min_length=1)
    """Serial port path."""
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    """Line speed in bit/s."""
    parity: Literal["N", "E", "O"] = "N"
    """Parity: none, even, odd."""
    stopbits: Literal[1, 2] = 1
    """Stop bits."""
    bytesize: Literal[7, 8] = 8
    """Data bits."""
    unit: int = Field(default=1, ge=1, le=247)
    """Modbus unit id (slave id); 0 is broadcast and never answers."""
    request_delay_s: float = Field(default=0.02, ge=0, le=5)
    """Silence kept on the line before each request."""


class ModbusRtuDriver(ModbusDriver):
    """Polls one device on a serial port."""

    def __init__(self, config: ModbusRtuConfig) -> None:
        endpoint = SerialEndpoint(
            config.port, config.baudrate, config.parity, config.stopbits, config.bytesize
        )
        super().__init__(config, endpoint)
