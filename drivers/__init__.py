"""Device drivers: each turns one configured device into readings.

A driver module defines a pydantic config model (subclass of ``DeviceConfig`` with a literal
``driver`` field) and a class implementing ``Driver``; it is listed in ``DRIVERS`` below.
"""

from drivers.base import Channel, DeviceConfig, Driver
from drivers.modbus_rtu import ModbusRtuConfig, ModbusRtuDriver
from drivers.modbus_tcp import ModbusTcpConfig, ModbusTcpDriver
from drivers.serial_line import SerialLineConfig, SerialLineDriver

DRIVERS: dict[str, tuple[type[DeviceConfig], type]] = {
    "modbus_tcp": (ModbusTcpConfig, ModbusTcpDriver),
    "modbus_rtu": (ModbusRtuConfig, ModbusRtuDriver),
    "serial_line": (SerialLineConfig, SerialLineDriver),
}


def make_driver(config: DeviceConfig) -> Driver:
    """Build the driver for one validated device section."""
    return DRIVERS[config.driver][1](config)


__all__ = ["DRIVERS", "Channel", "DeviceConfig", "Driver", "make_driver"]
