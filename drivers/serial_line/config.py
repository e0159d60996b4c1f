"""Configuration of the ``serial_line`` driver: its pydantic models, escapes and checksums.

Every option is described in ``drivers/serial_line/driver.py``; this module validates them (regexes
compile, channel groups exist in the pattern) so ``config validate`` reports mistakes early.
"""

from __future__ import annotations

import codecs
import re
from functools import reduce
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from drivers.base import DeviceConfig

StatusCode = Literal["00", "01", "02"]
Checksum = Literal["none", "sum8", "xor8"]

_ESCAPES = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\"}
_HEX = frozenset("0123456789abcdefABCDEF")
_DEFAULT_MAP = {"0": "00", "1": "01", "2": "02"}


def decode_escapes(text: str, encoding: str = "ascii") -> bytes:
    """``text`` as bytes, escapes ``\\r \\n \\t \\0 \\\\ \\xHH`` decoded; ValueError if unknown."""
    out = bytearray()
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\":
            try:
                out += char.encode(encoding)
            except UnicodeEncodeError:
                raise ValueError(f"{char!r} cannot be written in {encoding}") from None
            i += 1
            continue
        code = text[i + 1 : i + 2]
        if code in _ESCAPES:
            out += _ESCAPES[code]
            i += 2
        elif code == "x" and len(text) >= i + 4 and set(text[i + 2 : i + 4]) <= _HEX:
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            bad = text[i : i + 4] if code == "x" else text[i : i + 2]
            raise ValueError(
                f"unknown escape '{bad}' at position {i} (known: \\r \\n \\t \\0 \\\\ \\xHH)"
            )
    return bytes(out)


def sum8(data: bytes) -> int:
    """Sum of the bytes modulo 256."""
    return sum(data) & 0xFF


def xor8(data: bytes) -> int:
    """XOR of the bytes (the NMEA 0183 checksum)."""
    return reduce(lambda a, b: a ^ b, data, 0)


CHECKSUMS = {"sum8": sum8, "xor8": xor8}


def _groups_hint(pattern: re.Pattern[str]) -> str:
    names = ", ".join(pattern.groupindex)
    if names:
        return f"its named groups: {names}"
    return "it has no named groups; write (?P<name>...) around each value"


def _compiled(info: ValidationInfo) -> re.Pattern[str] | None:
    """The device pattern, if it was valid (else its own error is already reported)."""
    pattern = info.data.get("pattern")
    return re.compile(pattern) if pattern is not None else None


class SerialStatusConfig(BaseModel):
    """Where the line carries the instrument's status (measuring, calibrating, fault)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    group: str = Field(min_length=1)
    """Named group of ``pattern`` holding the status text (e.g. one letter)."""
    map: dict[str, StatusCode] = Field(default_factory=lambda: dict(_DEFAULT_MAP))
    """Status text -> status code; text not in the map means "02" (fault)."""


class SerialChannel(BaseModel):
    """One measured parameter and the group of the answer line that holds it."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    param: str = Field(min_length=1)
    """Parameter name (e.g. "PM10"), unique within the device."""
    unit: str = ""
    """Unit of the value after scaling (e.g. "ug/m3")."""
    group: str | None = None
    """Named group of ``pattern`` holding the value; default: the param name."""
    scale: float = Field(default=1.0, allow_inf_nan=False)
    """Multiplier applied to the number read."""
    offset: float = Field(default=0.0, allow_inf_nan=False)
    """Added after scaling: value = number * scale + offset."""
    status_group: str | None = None
    """This channel's status group; overrides ``status.group`` (the map is ``status.map``)."""

    @property
    def value_group(self) -> str:
        return self.group or self.param


class SerialLineConfig(DeviceConfig):
    """An instrument answering one line of text per request on a serial port."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    driver: Literal["serial_line"]
    port: str = Field(min_length=1)
    """Serial device path, e.g. "/dev/ttyUSB1" or "/dev/serial/by-id/..."."""
    baudrate: int = Field(default=9600, gt=0, le=4_000_000)
    """Bits per second."""
    bytesize: Literal[5, 6, 7, 8] = 8
    """Data bits per character."""
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    """Parity: N none, E even, O odd, M mark, S space."""
    stopbits: Literal[1, 1.5, 2] = 1
    """Stop bits."""
    encoding: str = "ascii"
    """Text encoding of requests and answers (a Python codec name, e.g. "ascii", "latin-1")."""
    request: str | None = None
    """Sent each poll (escapes allowed); none: the instrument sends lines by itself."""
    terminator: str = "\r\n"
    """What ends an answer line (escapes allowed)."""
    timeout_s: float = Field(default=1.0, gt=0, le=30)
    """Seconds to wait for a whole answer line, per try."""
    retries: int = Field(default=2, ge=0, le=10)
    """Extra tries after no answer or a bad line."""
    delay_s: float = Field(default=0.0, ge=0, le=10)
    """Seconds of silence on the line before each request."""
    pattern: str = Field(min_length=1)
    """Regular expression searched in the answer line; one named group per value."""
    checksum: Checksum = "none"
    """Checksum in the group ``checksum`` (two hex digits): none, sum8 or xor8."""
    status: SerialStatusConfig | None = None
    """Device-wide status group; channels may override it with ``status_group``."""
    channels: list[SerialChannel] = Field(min_length=1)
    """The measured parameters."""

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            info = codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r} (e.g. ascii, latin-1, utf-8)") from None
        if not info._is_text_encoding:  # type: ignore[attr-defined]
            raise ValueError(f"{value!r} is not a text encoding (e.g. ascii, latin-1, utf-8)")
        return value

    @field_validator("request", "terminator")
    @classmethod
    def _escapes_decode(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        data = decode_escapes(value, info.data.get("encoding", "utf-8"))
        if not data:
            raise ValueError("must not be empty")
        return value

    @field_validator("pattern")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            where = f" at position {exc.pos}" if exc.pos is not None else ""
            raise ValueError(f"not a valid regular expression: {exc.msg}{where}") from None
        return value

    @field_validator("checksum")
    @classmethod
    def _checksum_group(cls, value: str, info: ValidationInfo) -> str:
        pattern = _compiled(info)
        if value != "none" and pattern is not None and "checksum" not in pattern.groupindex:
            raise ValueError(
                f"checksum {value!r} needs a group named 'checksum' in pattern holding the two "
                r"hex digits, e.g. \*(?P<checksum>[0-9A-Fa-f]{2})"
            )
        return value

    @field_validator("status")
    @classmethod
    def _status_group(
        cls, value: SerialStatusConfig | None, info: ValidationInfo
    ) -> SerialStatusConfig | None:
        pattern = _compiled(info)
        if value is not None and pattern is not None and value.group not in pattern.groupindex:
            raise ValueError(
                f"status group {value.group!r} is not in pattern ({_groups_hint(pattern)})"
            )
        return value

    @field_validator("channels")
    @classmethod
    def _channel_groups(cls, value: list[SerialChannel], info: ValidationInfo) -> list:
        pattern = _compiled(info)
        first: dict[str, int] = {}
        for index, channel in enumerate(value):
            where = f"channels[{index}] ({channel.param!r})"
            if channel.param in first:
                raise ValueError(
                    f"param {channel.param!r} appears in channels {first[channel.param]} and "
                    f"{index}; each param must be unique in a device"
                )
            first[channel.param] = index
            if pattern is None:
                continue
            if channel.value_group not in pattern.groupindex:
                how = "group" if channel.group else "group (defaults to the param)"
                raise ValueError(
                    f"{where}: {how} {channel.value_group!r} is not in pattern "
                    f"({_groups_hint(pattern)})"
                )
            if channel.status_group and channel.status_group not in pattern.groupindex:
                raise ValueError(
                    f"{where}: status_group {channel.status_group!r} is not in pattern "
                    f"({_groups_hint(pattern)})"
                )
        return value
