"""Modbus RTU driver (``driver = "modbus_rtu"``): devices on an RS-485/RS-232 serial port.

Its options (``ModbusRtuConfig`` in ``config.py``), port sharing and recovery
after a USB adapter is unplugged are in ``README.md``. pymodbus builds the RTU frames with CRC
(``wire.py``); pyserial drives the port; devices on one port share it through ``bus.py``.
"""

from __future__ import annotations

from drivers.modbus.bus import SerialEndpoint
from drivers.modbus.config import ModbusRtuConfig
from drivers.modbus.driver import ModbusDriver


class ModbusRtuDriver(ModbusDriver):
    """Polls one device on a serial port."""

    def __init__(self, config: ModbusRtuConfig) -> None:
        endpoint = SerialEndpoint(
            config.port, config.baudrate, config.parity, config.stopbits, config.bytesize
        )
        super().__init__(config, endpoint)


__all__ = ["ModbusRtuConfig", "ModbusRtuDriver"]
