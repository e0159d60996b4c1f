"""A Modbus device with N float32 channels (ABCD, registers 0, 2, 4, ...) that drift with time."""

from __future__ import annotations

import math
import time

from drivers.modbus.codec import encode
from simulators.modbus_server import ModbusDevice


class FloatDevice(ModbusDevice):
    """Channel i reads ``10 * (i + 1) + sin(t / 7 + i)``, updated before every request."""

    def __init__(self, channels: int) -> None:
        super().__init__(holding={a: 0 for a in range(2 * channels)})
        self.channels = channels

    def refresh(self) -> None:
        t = time.time()
        for i in range(self.channels):
            value = round(10 * (i + 1) + math.sin(t / 7 + i), 3)
            self.set_registers(2 * i, encode(value, "float32", "ABCD"))
