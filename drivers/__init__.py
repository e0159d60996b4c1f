"""Device drivers: each turns one configured device into readings.

Each driver lives in its own folder (``drivers/<folder>/``, see ``drivers/README.md``): a
pydantic config model (subclass of ``DeviceConfig`` with a literal ``driver`` field), a class
implementing ``Driver`` or ``ListeningDriver``, a README, a sample and test cases. Adding a
driver is its folder plus one entry in ``_REGISTRY`` below: name -> (its config model, its driver
class), each as ``"module:Name"``; the model lives in the folder's ``config.py``, apart from the
driver. Modules are imported on first use, so a station loads only the drivers it configures
(pymodbus for Modbus, pyserial's line handling for serial instruments), and checking a
configuration loads their config models alone.
"""

from __future__ import annotations

from core.registry import LazyRegistry
from drivers.base import Channel, DeviceConfig, Driver, Identifying, ListeningDriver

_REGISTRY: dict[str, tuple[str, str]] = {
    "modbus_tcp": ("drivers.modbus.config:ModbusTcpConfig", "drivers.modbus.tcp:ModbusTcpDriver"),
    "modbus_rtu": ("drivers.modbus.config:ModbusRtuConfig", "drivers.modbus.rtu:ModbusRtuDriver"),
    "serial_line": (
        "drivers.serial_line.config:SerialLineConfig",
        "drivers.serial_line.driver:SerialLineDriver",
    ),
    "hj212": ("drivers.hj212.config:Hj212Config", "drivers.hj212.driver:Hj212Driver"),
    "files": ("drivers.files.config:FilesConfig", "drivers.files.driver:FilesDriver"),
    "sdi12": ("drivers.sdi12.config:Sdi12Config", "drivers.sdi12.driver:Sdi12Driver"),
}


DRIVERS: LazyRegistry[type[DeviceConfig], type] = LazyRegistry(_REGISTRY)
"""Driver name -> config model (``.config``), driver class (``.implementation``), each imported
when first asked for."""


def package_of(name: str) -> str:
    """The folder (package) of a registered driver, e.g. ``drivers.modbus`` for ``modbus_tcp``."""
    return DRIVERS.module_of(name).rpartition(".")[0]


def make_driver(config: DeviceConfig) -> Driver | ListeningDriver:
    """Build the driver for one validated device section."""
    return DRIVERS.implementation(config.driver)(config)


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
