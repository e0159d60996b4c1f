"""Modbus TCP driver (``driver = "modbus_tcp"``), also for RTU frames over TCP (``framer``).

Its options (the model below and those of ``ModbusDeviceConfig``), what a poll does and how a
reading gets its status are in ``README.md``. pymodbus builds the requests and decodes the
answers, framing them as MBAP or RTU (with CRC) frames (``wire.py``); devices with the same
host and port share one connection (``bus.py``); requests are coalesced by ``plan.py``.
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
    """This driver."""
    host: str = Field(min_length=1)
    """IP address or host name of the device or gateway."""
    port: int = Field(default=502, ge=1, le=65535)
    """TCP port (502 on most devices)."""
    framer: Literal["tcp", "rtu"] = "tcp"
    """"tcp": Modbus TCP (MBAP header), the usual case; "rtu": RTU frames with CRC over TCP, for
    serial device servers ("RTU over TCP", "transparent" gateways)."""


class ModbusTcpDriver(ModbusDriver):
    """Polls one device over TCP."""

    def __init__(self, config: ModbusTcpConfig) -> None:
        super().__init__(config, TcpEndpoint(config.host, config.port, config.framer))


__all__ = ["ModbusChannel", "ModbusTcpConfig", "ModbusTcpDriver", "StatusConfig"]
