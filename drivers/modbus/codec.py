"""Modbus register codec: 16-bit registers <-> numbers, for every type and word/byte order.

``order`` names where the bytes of a big-endian value ``A B C D`` (``A`` most significant) sit
in the registers: ``ABCD`` big-endian (default), ``CDAB`` word swap, ``BADC`` byte swap within
each word, ``DCBA`` little-endian. The same rule extends to 64-bit types (word swap reverses all
four words) and to 16-bit types (only the byte swap applies).

Floats that are NaN or infinite raise ``NonFiniteValueError``: a device sends those to say "no
value", so they must never reach the buffer as numbers.

Two more shapes a value can take: a ``bit`` of a register (``decode_bit``; bit 0 is the least
significant) and a ``string`` of ASCII characters, two per register (``decode_string``; ABCD and
CDAB put the first character in the high byte, BADC and DCBA in the low byte; word order does
not apply to text). A string is delivered as text (a label such as ``SO2-A1``, a serial
number); a number written as text (``" 12.5"``) is read with ``text_number``.

Integers stay integers: ``channel_value`` gives an int for an integer register or a bit that is
not scaled (scale 1, offset 0), so -123456 is delivered as -123456, not -123456.0. An integer
beyond the buffer's signed 64 bits (a uint64 of 2**63 or more) becomes a float.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Literal, get_args

RegisterType = Literal[
    "int16", "uint16", "int32", "uint32", "float32", "int64", "uint64", "float64"
]
ByteOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]
TYPES: tuple[str, ...] = get_args(RegisterType)
ORDERS: tuple[str, ...] = get_args(ByteOrder)

# struct format character of each type; its size gives the register count.
_FORMATS: dict[str, str] = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "float32": "f",
    "int64": "q",
    "uint64": "Q",
    "float64": "d",
}


_STRUCTS = {t: struct.Struct(">" + f) for t, f in _FORMATS.items()}
_COUNTS = {t: s.size // 2 for t, s in _STRUCTS.items()}
_REGISTERS = {n: struct.Struct(f">{n}H") for n in set(_COUNTS.values())}


class NonFiniteValueError(ValueError):
    """The registers hold a float NaN or infinity, or scaling overflowed."""


def register_count(type: RegisterType) -> int:
    """Number of 16-bit registers a value of ``type`` occupies."""
    count = _COUNTS.get(type)
    return count if count is not None else struct.calcsize(">" + _format(type)) // 2


def decode(registers: Sequence[int], type: RegisterType, order: ByteOrder = "ABCD") -> int | float:
    """Decode registers into the raw value: an int, or a float (float32 as its shortest repr)."""
    data = _pack(registers, type, register_count(type))
    if order != "ABCD":
        data = _reorder(data, order)
    (value,) = _STRUCTS[type].unpack(data)
    if value.__class__ is float:
        _check_finite(value, type)
        if type == "float32":
            return _shortest_float32(value, data)
    return value


def _pack(registers: Sequence[int], type: str, count: int) -> bytes:
    """The big-endian bytes of ``count`` 16-bit registers; ``ValueError`` if they are not."""
    if len(registers) != count:
        raise ValueError(f"{type} needs {count} registers, got {len(registers)}")
    try:
        return _REGISTERS[count].pack(*registers)
    except struct.error:
        bad = next((r for r in registers if not 0 <= r <= 0xFFFF), registers)
        raise ValueError(f"register value {bad} is not a 16-bit unsigned integer") from None


def _check_finite(value: float, type: str) -> None:
    if value - value != 0.0:  # NaN or infinite (a finite float minus itself is 0.0)
        if math.isnan(value):
            raise NonFiniteValueError(f"{type} value is NaN")
        raise NonFiniteValueError(f"{type} value is infinite")


def encode(value: float, type: RegisterType, order: ByteOrder = "ABCD") -> list[int]:
    """Encode a value into registers; integer types round to the nearest integer."""
    fmt = _format(type)
    try:
        data = struct.pack(">" + fmt, float(value) if fmt in "fd" else round(value))
    except (struct.error, OverflowError, ValueError) as exc:
        raise ValueError(f"{value!r} does not fit in {type}") from exc
    data = _reorder(data, order)
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def scale_value(value: int | float, scale: float = 1.0, offset: float = 0.0) -> float:
    """Return ``value * scale + offset``, computed in decimal so 123 * 0.1 gives 12.3."""
    if scale == 1.0 and offset == 0.0:
        return float(value)
    result = float(Decimal(repr(value)) * Decimal(repr(scale)) + Decimal(repr(offset)))
    if not math.isfinite(result):
        raise NonFiniteValueError(f"{value!r} * {scale!r} + {offset!r} overflows a float")
    return result


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def channel_value(raw: int | float, scale: float = 1.0, offset: float = 0.0) -> int | float:
    """The value a reading carries: an unscaled integer stays an exact int, the rest floats."""
    if isinstance(raw, int) and scale == 1.0 and offset == 0.0 and INT64_MIN <= raw <= INT64_MAX:
        return int(raw)  # int(): a bool becomes 0 or 1
    return scale_value(raw, scale, offset)


def decode_value(
    registers: Sequence[int],
    type: RegisterType,
    order: ByteOrder = "ABCD",
    scale: float = 1.0,
    offset: float = 0.0,
) -> int | float:
    """Decode registers and apply scale and offset: the value a reading carries."""
    return channel_value(decode(registers, type, order), scale, offset)


def value_decoder(
    type: RegisterType, order: ByteOrder = "ABCD", scale: float = 1.0, offset: float = 0.0
) -> Callable[[Sequence[int]], int | float]:
    """``decode_value`` for one channel, made once: what a poll calls for each value.

    The common case (a big-endian float32 or float64, neither scaled nor offset) skips
    ``decode_value``'s per-call look-ups; every other case is ``decode_value`` itself. The same
    values and the same errors either way (``tests/drivers/test_modbus_codec.py`` compares them)."""
    if order != "ABCD" or scale != 1.0 or offset != 0.0 or type not in ("float32", "float64"):
        return functools.partial(decode_value, type=type, order=order, scale=scale, offset=offset)
    count, value_struct, shortest = _COUNTS[type], _STRUCTS[type], type == "float32"
    if shortest:
        return _float32_decoder()

    def decode_float(registers: Sequence[int]) -> int | float:
        data = _pack(registers, type, count)
        (value,) = value_struct.unpack(data)
        _check_finite(value, type)
        return _shortest_float32(value, data) if shortest else value

    return decode_float


def _float32_decoder() -> Callable[[Sequence[int]], int | float]:
    """A big-endian float32 channel's decoder: a value seen lately costs one pack and one look-up.

    Cached values are finite (NaN and infinity raise before the cache), so a hit skips the
    unpack and the finiteness check; any bad input goes through ``_pack`` for its usual error."""
    pair, known, unpack = _REGISTERS[2].pack, _SHORTEST.get, _FLOAT32.unpack
    pack, templates, cache = _FLOAT32_PACK, _TEMPLATES, _SHORTEST

    def decode_float32(registers: Sequence[int]) -> int | float:
        try:
            data = pair(*registers) if len(registers) == 2 else _pack(registers, "float32", 2)
        except struct.error:
            data = _pack(registers, "float32", 2)  # raises the clear ValueError
        value = known(data)
        if value is not None:
            return value
        (value,) = unpack(data)
        if value - value != 0.0:  # NaN or infinity
            _check_finite(value, "float32")
        # a miss, the hot path with fresh values: ``_shortest_float32`` inlined
        for template in templates:
            candidate = float(template % value)
            try:
                if pack(candidate) == data:
                    break
            except OverflowError:  # rounded up past the largest float32
                continue
        else:
            candidate = value  # unused: 9 significant digits always round-trip a float32
        if len(cache) >= _SHORTEST_MAX:
            cache.clear()
        cache[data] = candidate
        return candidate

    return decode_float32


# Below the smallest normal number a float is denormal: no instrument measures there, but a
# wrong byte order lands there often (2.4e-41); above 1e15 neither (3.9e+23).
_SMALLEST_NORMAL = {"float32": 1.1754943508222875e-38, "float64": 2.2250738585072014e-308}
IMPLAUSIBLE_ABOVE = 1e15


def implausible(value: float, type: RegisterType) -> bool:
    """True for a float that a wrong byte order gives more often than an instrument: denormal,
    or larger than 1e15 in magnitude (NaN and infinity never reach here: they raise)."""
    magnitude = abs(value)
    return magnitude > IMPLAUSIBLE_ABOVE or 0.0 < magnitude < _SMALLEST_NORMAL.get(type, 0.0)


def decode_every_order(registers: Sequence[int], type: RegisterType) -> dict[str, float | str]:
    """The registers decoded in each of the four byte orders; a value, or why it is none."""
    decoded: dict[str, float | str] = {}
    for order in ORDERS:
        try:
            decoded[order] = decode(registers, type, order)  # type: ignore[arg-type]
        except ValueError as exc:
            decoded[order] = str(exc)
    return decoded


def _format(type: str) -> str:
    try:
        return _FORMATS[type]
    except KeyError:
        raise ValueError(f"unknown register type {type!r}; expected one of {TYPES}") from None


def _reorder(data: bytes, order: str) -> bytes:
    """Convert between big-endian bytes and register bytes; each swap is its own inverse."""
    if order not in ORDERS:
        raise ValueError(f"unknown byte order {order!r}; expected one of {ORDERS}")
    if order in ("BADC", "DCBA"):
        data = b"".join(data[i : i + 2][::-1] for i in range(0, len(data), 2))
    if order in ("CDAB", "DCBA"):
        data = b"".join(data[i : i + 2] for i in reversed(range(0, len(data), 2)))
    return data


_FLOAT32 = struct.Struct(">f")
_FLOAT32_PACK = _FLOAT32.pack
_TEMPLATES = ("%.6g", "%.7g", "%.8g", "%.9g")  # the same digits as format(value, ".6g")...


# Analyzers give their values at a fixed resolution (0.01 mg/Nm3...), so the same few thousand
# float32s come back poll after poll: each one's shortest decimal is worked out once.
_SHORTEST: dict[bytes, float] = {}
_SHORTEST_MAX = 16_384  # entries (about 2 MiB at most); emptied when full


def _shortest_float32(value: float, big_endian: bytes) -> float:
    """The shortest decimal that packs back to the same float32 (12.3, not 12.300000190734863).

    The smallest of 6, 7, 8, 9 significant digits whose decimal packs back to ``big_endian``.
    A miss (a value not seen lately: a fast analyzer's every value) is the hot path, so each try
    is ``%``-formatting and a bound ``pack``, with no per-try look-ups."""
    known = _SHORTEST.get(big_endian)
    if known is not None:
        return known
    pack = _FLOAT32_PACK
    shortest = value  # unused: 9 significant digits always round-trip a float32
    for template in _TEMPLATES:
        candidate = float(template % value)
        try:
            if pack(candidate) == big_endian:
                shortest = candidate
                break
        except OverflowError:  # rounded up past the largest float32
            continue
    if len(_SHORTEST) >= _SHORTEST_MAX:
        _SHORTEST.clear()
    _SHORTEST[big_endian] = shortest
    return shortest


def decode_bit(register: int, bit: int) -> int:
    """Bit ``bit`` (0 = least significant) of a 16-bit register: 0 or 1."""
    if not 0 <= bit <= 15:
        raise ValueError(f"bit {bit} is not in 0..15")
    if not 0 <= register <= 0xFFFF:
        raise ValueError(f"register value {register} is not a 16-bit unsigned integer")
    return (register >> bit) & 1


def encode_bit(register: int, bit: int, value: bool) -> int:
    """``register`` with bit ``bit`` set to ``value``."""
    if not 0 <= bit <= 15:
        raise ValueError(f"bit {bit} is not in 0..15")
    return (register | (1 << bit)) if value else (register & ~(1 << bit) & 0xFFFF)


def decode_string(registers: Sequence[int], order: ByteOrder = "ABCD") -> str:
    """ASCII text held two characters per register: it ends at the first NUL, trailing spaces
    are dropped; a control character or a byte above 0x7E is a ``ValueError``."""
    if order not in ORDERS:
        raise ValueError(f"unknown byte order {order!r}; expected one of {ORDERS}")
    for register in registers:
        if not 0 <= register <= 0xFFFF:
            raise ValueError(f"register value {register} is not a 16-bit unsigned integer")
    byteorder: Literal["big", "little"] = "little" if order in ("BADC", "DCBA") else "big"
    data = b"".join(r.to_bytes(2, byteorder) for r in registers)
    text = data.split(b"\x00", 1)[0]
    if any(byte < 0x20 or byte > 0x7E for byte in text):
        raise ValueError(f"registers {_hex(registers)} are not printable ASCII text")
    return text.decode("ascii").rstrip(" ")


def encode_string(text: str, length: int, order: ByteOrder = "ABCD") -> list[int]:
    """``text`` in ``length`` registers, padded with NULs."""
    data = text.encode("ascii")
    if len(data) > 2 * length:
        raise ValueError(f"{text!r} does not fit in {length} registers")
    data = data.ljust(2 * length, b"\x00")
    byteorder: Literal["big", "little"] = "little" if order in ("BADC", "DCBA") else "big"
    return [int.from_bytes(data[i : i + 2], byteorder) for i in range(0, len(data), 2)]


def text_number(text: str, scale: float = 1.0, offset: float = 0.0) -> float:
    """The number a ``number_text`` channel carries, scaled; ``ValueError`` if the text is not
    a number."""
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"text {text!r} is not a number") from None
    if not math.isfinite(value):
        raise NonFiniteValueError(f"text {text!r} is not a finite number")
    return scale_value(value, scale, offset)


def _hex(registers: Sequence[int]) -> str:
    return " ".join(f"0x{r:04X}" for r in registers)
