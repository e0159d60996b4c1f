"""Device drivers: each turns one configured device into readings.

Each driver lives in its own folder (``drivers/<folder>/``, see ``drivers/README.md``): a
pydantic config model (subclass of ``DeviceConfig`` with a literal ``driver`` field), a class
implementing ``Driver`` or ``ListeningDriver``, a README, a sample and test cases. Adding a
driver is its folder plus one line in ``_REGISTRY`` below: name -> (module, model, class).
Driver modules are imported on first use, so a station loads only the drivers it configures
(pymodbus for Modbus, pyserial's line handling for serial instruments).
"""

from __future__ import annotations

from core.registry import LazyRegistry
from drivers.base import Channel, DeviceConfig, Driver, Identifying, ListeningDriver

_REGISTRY: dict[str, tuple[str, str, str]] = {
    "modbus_tcp": ("drivers.modbus.tcp", "ModbusTcpConfig", "ModbusTcpDriver"),
    "modbus_rtu": ("drivers.modbus.rtu", "ModbusRtuConfig", "ModbusRtuDriver"),
    "serial_line": ("drivers.serial_line.driver", "SerialLineConfig", "SerialLineDriver"),
    "hj212": ("drivers.hj212.driver", "Hj212Config", "Hj212Driver"),
    "files": ("drivers.files.driver", "FilesConfig", "FilesDriver"),
    "sdi12": ("drivers.sdi12.driver", "Sdi12Config", "Sdi12Driver"),
}


DRIVERS: LazyRegistry[type[DeviceConfig], type] = LazyRegistry(_REGISTRY)
"""Driver name -> (config model, driver class), each imported when first asked for."""


def package_of(name: str) -> str:
    """The folder (package) of a registered driver, e.g. ``drivers.modbus`` for ``modbus_tcp``."""
    return DRIVERS.module_of(name).rpartition(".")[0]


def make_driver(config: DeviceConfig) -> Driver | ListeningDriver:
    """Build the driver for one validated device section."""
    return DRIVERS[config.driver][1](config)


__all__ = [
    "DRIVERS",
    "Channel",
    "DeviceConfig",
    "Driver",
    "Identifying",
    "ListeningDriver",
    "make_driver",
    "package_of",
]
