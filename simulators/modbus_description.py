"""Device description files: what simulated Modbus devices hold, in TOML.

One file describes every unit id on a simulated bus (or behind a TCP port)::

    [line]                      # optional, RTU on a pty only: settings the devices expect;
    baudrate = 9600             # a request at other settings gets no answer
    parity = "N"                # "N" "E" "O"
    stopbits = 1
    bytesize = 8

    [gateway]                   # optional: the units sit behind a gateway, which answers
    absent_exception = 11       # a unit id with no device with this exception (10 or 11)

    [[units]]
    unit = 3                    # unit id, 0..247
    fault = { delay_s = 0.5 }   # optional, from the start: no_answer, delay_s,
                                # exception_code, corrupt_crc, truncate

      [[units.values]]          # one typed value
      function = "holding"      # "holding" "input" "coil" "discrete"        (default holding)
      register = 0              # zero-based address
      type = "float32"          # int16 uint16 int32 uint32 float32 int64 uint64 float64
                                # bit string                                  (default float32)
      order = "ABCD"            # ABCD CDAB BADC DCBA                         (default ABCD)
      bit = 3                   # type "bit" in a register: which bit (the others are kept)
      length = 4                # type "string": registers
      value = 12.3              # number, true/false for bits, text for strings

      [[units.registers]]       # raw words (or bits for coil/discrete), from an address on
      function = "holding"
      register = 100
      words = [0, 1, 0x0203]

      [[units.forbidden]]       # requests touching these addresses get exception 2
      function = "holding"
      first = 40
      last = 49

Any address not given does not exist: reading it gets exception 2 (illegal data address).
"""

from __future__ import annotations

import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, ValidationError

from core.model import Model
from drivers.modbus.codec import encode, encode_bit, encode_string
from simulators.modbus_rtu import LineSettings
from simulators.modbus_server import Fault, ModbusDevice

Function = Literal["holding", "input", "coil", "discrete"]
warnings.filterwarnings("ignore", message=r'Field name "register" in "\w+" shadows')
_TABLES = {"holding": "holding", "input": "input", "coil": "coils", "discrete": "discrete"}


class _Model(Model):
    model_config = ConfigDict(extra="forbid")


class LineSpec(_Model):
    baudrate: int | None = None
    parity: Literal["N", "E", "O"] | None = None
    stopbits: Literal[1, 2] | None = None
    bytesize: Literal[7, 8] | None = None


class FaultSpec(_Model):
    no_answer: bool = False
    delay_s: float = Field(default=0.0, ge=0)
    exception_code: int | None = Field(default=None, ge=1, le=255)
    corrupt_crc: bool = False
    truncate: bool = False


class ValueSpec(_Model):
    function: Function = "holding"
    register: int = Field(ge=0, le=65535)
    type: Literal[
        "int16",
        "uint16",
        "int32",
        "uint32",
        "float32",
        "int64",
        "uint64",
        "float64",
        "bit",
        "string",
    ] = "float32"
    order: Literal["ABCD", "CDAB", "BADC", "DCBA"] = "ABCD"
    bit: int | None = Field(default=None, ge=0, le=15)
    length: int | None = Field(default=None, ge=1, le=125)
    value: bool | int | float | str


class RegistersSpec(_Model):
    function: Function = "holding"
    register: int = Field(ge=0, le=65535)
    words: list[int]


class GatewaySpec(_Model):
    absent_exception: Literal[10, 11] = 11


class ForbiddenSpec(_Model):
    function: Function = "holding"
    first: int = Field(ge=0, le=65535)
    last: int = Field(ge=0, le=65535)


class UnitSpec(_Model):
    unit: int = Field(ge=0, le=247)
    fault: FaultSpec | None = None
    values: list[ValueSpec] = Field(default_factory=list)
    registers: list[RegistersSpec] = Field(default_factory=list)
    forbidden: list[ForbiddenSpec] = Field(default_factory=list)


class DescriptionSpec(_Model):
    line: LineSpec | None = None
    gateway: GatewaySpec | None = None
    units: list[UnitSpec] = Field(default_factory=list)


@dataclass
class Description:
    """What a description file builds: devices by unit id, their faults, the line settings, and
    the exception a gateway answers for a unit id with no device (None: not a gateway)."""

    devices: dict[int, ModbusDevice]
    faults: dict[int, Fault]
    line: LineSettings
    absent_exception: int | None = None


def load_description(path: str | Path) -> Description:
    """Read a description file; ``ValueError`` names the file and what is wrong."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
        spec = DescriptionSpec.model_validate(data)
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    devices: dict[int, ModbusDevice] = {}
    faults: dict[int, Fault] = {}
    for unit in spec.units:
        try:
            devices[unit.unit] = build_device(unit)
        except ValueError as exc:
            raise ValueError(f"{path}: unit {unit.unit}: {exc}") from None
        if unit.fault is not None:
            faults[unit.unit] = Fault(**unit.fault.model_dump())
    line = LineSettings(**spec.line.model_dump()) if spec.line else LineSettings()
    if not spec.units and spec.gateway is None:
        raise ValueError(f"{path}: no [[units]] (only a [gateway] may have none)")
    gateway = spec.gateway.absent_exception if spec.gateway else None
    return Description(devices, faults, line, gateway)


def build_device(unit: UnitSpec) -> ModbusDevice:
    """One simulated device from its description."""
    device = ModbusDevice()
    for raw in unit.registers:
        table = _TABLES[raw.function]
        for offset, word in enumerate(raw.words):
            device.tables[table][raw.register + offset] = word & 0xFFFF
    for spec in unit.values:
        table = _TABLES[spec.function]
        if spec.function in ("coil", "discrete"):
            device.tables[table][spec.register] = int(bool(spec.value))
        elif spec.type == "bit":
            if spec.bit is None:
                raise ValueError(f"register {spec.register}: type bit needs bit = 0..15")
            word = device.tables[table].get(spec.register, 0)
            device.tables[table][spec.register] = encode_bit(word, spec.bit, bool(spec.value))
        elif spec.type == "string":
            words = encode_string(str(spec.value), spec.length or 1, spec.order)
            device.set_registers(spec.register, words, table)
        else:
            if isinstance(spec.value, str):
                raise ValueError(f"register {spec.register}: {spec.type} needs a number")
            device.set_registers(spec.register, encode(spec.value, spec.type, spec.order), table)
    for rng in unit.forbidden:
        device.forbid(rng.first, rng.last - rng.first + 1, _TABLES[rng.function])
    return device
