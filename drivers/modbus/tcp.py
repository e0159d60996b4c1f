"""Modbus TCP driver (``driver = "modbus_tcp"``), also for RTU frames over TCP (``framer``).

Its options (``ModbusTcpConfig`` in ``config.py``), what a poll does and how a
reading gets its status are in ``README.md``. pymodbus builds the requests and decodes the
answers, framing them as MBAP or RTU (with CRC) frames (``wire.py``); devices with the same
host and port share one connection (``bus.py``); requests are coalesced by ``plan.py``.
"""

from __future__ import annotations

from drivers.modbus.bus import TcpEndpoint
from drivers.modbus.config import ModbusChannel, ModbusTcpConfig, StatusConfig
from drivers.modbus.driver import ModbusDriver


class ModbusTcpDriver(ModbusDriver):
    """Polls one device over TCP."""

    def __init__(self, config: ModbusTcpConfig) -> None:
        super().__init__(config, TcpEndpoint(config.host, config.port, config.framer))


__all__ = ["ModbusChannel", "ModbusTcpConfig", "ModbusTcpDriver", "StatusConfig"]
