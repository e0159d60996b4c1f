"""Device drivers: each turns one configured device into readings.

A driver module defines a pydantic config model (subclass of ``DeviceConfig`` with a literal
``driver`` field) and a class implementing ``Driver``; it is listed in ``_REGISTRY`` below.
Driver modules are imported on first use, so a station loads only the drivers it configures
(pymodbus for Modbus, pyserial's line handling for serial instruments).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from drivers.base import Channel, DeviceConfig, Driver, ListeningDriver

_REGISTRY: dict[str, tuple[str, str, str]] = {
    "modbus_tcp": ("drivers.modbus_tcp", "ModbusTcpConfig", "ModbusTcpDriver"),
    "modbus_rtu": ("drivers.modbus_rtu", "ModbusRtuConfig", "ModbusRtuDriver"),
    "serial_line": ("drivers.serial_line", "SerialLineConfig", "SerialLineDriver"),
    "hj212": ("drivers.hj212", "Hj212Config", "Hj212Driver"),
}


class _Drivers(Mapping[str, tuple[type[DeviceConfig], type]]):
    """Driver name -> (config model, driver class), each imported when first asked for."""

    def __getitem__(self, name: str) -> tuple[type[DeviceConfig], type]:
        module_name, config_name, driver_name = _REGISTRY[name]
        module = importlib.import_module(module_name)
        return getattr(module, config_name), getattr(module, driver_name)

    def __contains__(self, name: object) -> bool:
        return name in _REGISTRY

    def __iter__(self) -> Iterator[str]:
        return iter(_REGISTRY)

    def __len__(self) -> int:
        return len(_REGISTRY)


DRIVERS = _Drivers()


def make_driver(config: DeviceConfig) -> Driver | ListeningDriver:
    """Build the driver for one validated device section."""
    return DRIVERS[config.driver][1](config)


__all__ = [
    "DRIVERS",
    "Channel",
    "DeviceConfig",
    "Driver",
    "ListeningDriver",
    "make_driver",
]
