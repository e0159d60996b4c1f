"""Configuration shared by every Modbus driver: channels, status, coalescing, forbidden ranges.

The keys are documented with each driver (``drivers/modbus/tcp.py``, ``drivers/modbus/rtu.py``);
this module holds the one definition of each. Tables and function codes::

    "coil"      FC 1, read coils              bits
    "discrete"  FC 2, read discrete inputs    bits
    "holding"   FC 3, read holding registers  16-bit registers
    "input"     FC 4, read input registers    16-bit registers
"""

from __future__ import annotations

import warnings
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.base import DeviceConfig
from drivers.modbus.codec import ByteOrder, RegisterType, register_count

Function = Literal["coil", "discrete", "holding", "input"]
ValueType = Literal[
    "int16", "uint16", "int32", "uint32", "float32", "int64", "uint64", "float64", "bit", "string"
]
StatusCode = Literal["00", "01", "02"]

FUNCTION_CODES: dict[str, int] = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
BIT_TABLES = ("coil", "discrete")
DEFAULT_STATUS_MAP: dict[int, str] = {0: "00", 1: "01", 2: "02"}

# "register" is the field's name in the field's words; it only hides ABCMeta.register.
warnings.filterwarnings(
    "ignore",
    message=r'Field name "register" in "\w+" shadows',
    category=UserWarning,
)


class StatusConfig(BaseModel):
    """Where the device reports its status (measuring, calibrating, fault)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    register: int = Field(ge=0, le=65535)
    """Zero-based address of the status register (or coil / discrete input)."""
    function: Function = "holding"
    """Table of the status: "holding", "input", "coil" or "discrete"."""
    bit: int | None = Field(default=None, ge=0, le=15)
    """Use only this bit of the status register (0 = least significant); the map sees 0 or 1."""
    map: dict[int, StatusCode] = Field(default_factory=lambda: dict(DEFAULT_STATUS_MAP))
    """Status value -> status code; a value not in the map means "02" (fault)."""

    @model_validator(mode="after")
    def _bit_only_in_registers(self) -> StatusConfig:
        if self.bit is not None and self.function in BIT_TABLES:
            raise ValueError(f"bit applies to registers; a {self.function} is already one bit")
        return self


class ModbusChannel(BaseModel):
    """One measured parameter and where the device holds it."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    param: str = Field(min_length=1)
    """Parameter name (e.g. "SO2"), unique within the device."""
    unit: str = ""
    """Unit of the value after scaling (e.g. "mg/Nm3")."""
    register: int = Field(ge=0, le=65535)
    """Zero-based address of the first register, coil or discrete input (40001 -> 0)."""
    function: Function = "holding"
    """Table: "holding" (FC 3), "input" (FC 4), "coil" (FC 1) or "discrete" (FC 2)."""
    type: ValueType = "float32"
    """Value type; coils and discrete inputs are always "bit"."""
    order: ByteOrder = "ABCD"
    """Byte order: ABCD big-endian, CDAB word swap, BADC byte swap, DCBA little-endian."""
    bit: int | None = Field(default=None, ge=0, le=15)
    """For type "bit" in a register: which bit (0 = least significant)."""
    length: int | None = Field(default=None, ge=1, le=125)
    """For type "string": number of registers (two characters each)."""
    scale: float = Field(default=1.0, allow_inf_nan=False)
    """Multiplier applied to the raw value."""
    offset: float = Field(default=0.0, allow_inf_nan=False)
    """Added after scaling: value = raw * scale + offset."""
    status_register: int | None = Field(default=None, ge=0, le=65535)
    """This channel's status register; overrides the device-wide ``status.register``."""
    status_bit: int | None = Field(default=None, ge=0, le=15)
    """This channel's status bit in its status register; overrides ``status.bit``."""

    @model_validator(mode="after")
    def _shape(self) -> ModbusChannel:
        where = f"channel {self.param!r}"
        if self.function in BIT_TABLES:
            if "type" not in self.model_fields_set:
                self.type = "bit"
            elif self.type != "bit":
                raise ValueError(f"{where}: a {self.function} holds one bit; type must be 'bit'")
            if self.bit is not None:
                raise ValueError(f"{where}: bit applies to registers, not to a {self.function}")
        elif self.type == "bit" and self.bit is None:
            raise ValueError(f"{where}: type 'bit' in a {self.function} register needs bit = 0..15")
        if self.type != "bit" and self.bit is not None:
            raise ValueError(f"{where}: bit is only for type 'bit' (type is {self.type!r})")
        if self.type == "string" and self.length is None:
            raise ValueError(f"{where}: type 'string' needs length = number of registers")
        if self.type != "string" and self.length is not None:
            raise ValueError(f"{where}: length is only for type 'string'")
        last = self.register + self.count - 1
        if last > 65535:
            raise ValueError(
                f"{where}: {self.type} at register {self.register} ends at {last}, beyond the "
                "last register 65535"
            )
        return self

    @property
    def count(self) -> int:
        """Registers (or bits) the value occupies."""
        if self.type == "bit":
            return 1
        if self.type == "string":
            return self.length or 1
        return register_count(self.numeric_type)

    @property
    def numeric_type(self) -> RegisterType:
        return self.type  # type: ignore[return-value]  # only called for numeric types


class ForbiddenRange(BaseModel):
    """Addresses a request must never touch (the device refuses, or reading them has effects)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    function: Function = "holding"
    """Table of the range."""
    first: int = Field(ge=0, le=65535)
    """First forbidden address."""
    last: int = Field(ge=0, le=65535)
    """Last forbidden address (inclusive)."""

    @model_validator(mode="after")
    def _ordered(self) -> ForbiddenRange:
        if self.last < self.first:
            raise ValueError(f"forbidden range: last ({self.last}) is before first ({self.first})")
        return self


class ModbusDeviceConfig(DeviceConfig):
    """Keys every Modbus device section has, whatever the line."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    unit: int = Field(default=1, ge=0, le=247)
    """Modbus unit id (slave id) of the device."""
    timeout_s: float = Field(default=1.0, gt=0, le=30)
    """Seconds to wait for each answer."""
    retries: int = Field(default=2, ge=0, le=10)
    """Extra tries after a request got no (or a garbled) answer."""
    request_delay_s: float = Field(default=0.0, ge=0, le=5)
    """Silence kept on the line before each request (the largest of the devices sharing it)."""
    max_gap: int = Field(default=10, ge=0, le=124)
    """Unused registers one request may read to save a request (bits: 16 per register)."""
    forbidden: list[ForbiddenRange] = Field(default_factory=list)
    """Ranges no request may read across."""
    status: StatusConfig | None = None
    """Device-wide status; channels may override it with ``status_register``/``status_bit``."""
    channels: list[ModbusChannel] = Field(min_length=1)
    """The measured parameters."""

    @model_validator(mode="after")
    def _consistent(self) -> ModbusDeviceConfig:
        first: dict[str, int] = {}
        for index, channel in enumerate(self.channels):
            if channel.param in first:
                raise ValueError(
                    f"device {self.name!r}: param {channel.param!r} appears in channels "
                    f"{first[channel.param]} and {index}; each param must be unique in a device"
                )
            first[channel.param] = index
        for rng in self.forbidden:
            for channel in self.channels:
                if channel.function == rng.function and (
                    channel.register <= rng.last and channel.register + channel.count > rng.first
                ):
                    raise ValueError(
                        f"device {self.name!r}: channel {channel.param!r} ({channel.function} "
                        f"{channel.register}..{channel.register + channel.count - 1}) lies in "
                        f"the forbidden range {rng.first}..{rng.last}"
                    )
        return self
