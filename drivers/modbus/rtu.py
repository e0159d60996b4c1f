"""Modbus RTU driver (``driver = "modbus_rtu"``): devices on an RS-485/RS-232 serial port.

Its options (the model below and those of ``ModbusDeviceConfig``), port sharing and recovery
after a USB adapter is unplugged are in ``README.md``. pymodbus builds the RTU frames with CRC
(``wire.py``); pyserial drives the port; devices on one port share it through ``bus.py``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from drivers.modbus.bus import SerialEndpoint
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.driver import ModbusDriver


class ModbusRtuConfig(ModbusDeviceConfig):
    """A device answering Modbus RTU on a serial port."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    driver: Literal["modbus_rtu"]
    """This driver."""
    port: str = Field(min_length=1)
    """Serial port, e.g. "/dev/ttyUSB0" or a stable "/dev/serial/by-id/..." path."""
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
    """Silence kept on the port before each request (the largest of the devices sharing it)."""


class ModbusRtuDriver(ModbusDriver):
    """Polls one device on a serial port."""

    def __init__(self, config: ModbusRtuConfig) -> None:
        endpoint = SerialEndpoint(
            config.port, config.baudrate, config.parity, config.stopbits, config.bytesize
        )
        super().__init__(config, endpoint)
