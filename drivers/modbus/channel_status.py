"""One Modbus channel's pieces worked out once from its configuration: where its status comes
from (register, bit, map), what a status word means, and the function decoding its value."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from core.reading import FAULT
from drivers.modbus.codec import (
    channel_value,
    decode_bit,
    decode_string,
    text_number,
    value_decoder,
)
from drivers.modbus.config import BIT_TABLES, DEFAULT_STATUS_MAP, ModbusChannel, ModbusDeviceConfig
from drivers.modbus.plan import Span

Results = dict[Span, list[int] | str]  # registers (or bits) of each span, or why it failed


@dataclass(frozen=True, slots=True)
class StatusSource:
    """Where a channel's status is read: a one-register span, a bit of it, the code map."""

    span: Span
    bit: int | None
    map: Mapping[int, str]


def status_source(config: ModbusDeviceConfig, channel: ModbusChannel) -> StatusSource | None:
    """The channel's status register (its own, else the device's), or None: no status."""
    status = config.status
    register = channel.status_register
    if register is None and status is not None:
        register = status.register
    if register is None:
        return None
    function = status.function if status is not None else "holding"
    bit = channel.status_bit
    if bit is None and status is not None:
        bit = status.bit
    if function in BIT_TABLES:
        bit = None
    mapping = dict(status.map) if status is not None else dict(DEFAULT_STATUS_MAP)
    return StatusSource(Span(function, register, 1), bit, mapping)


def status_of(source: StatusSource, results: Results) -> tuple[str, str | None]:
    """(status code, error or None) a status register says."""
    status = results[source.span]
    if isinstance(status, str):
        return FAULT, f"status unknown: {status}"
    word = status[0] if source.bit is None else decode_bit(status[0], source.bit)
    code = source.map.get(word)
    if code is None:
        where = f"{source.span.function} register {source.span.address}"
        if source.bit is not None:
            where += f" bit {source.bit}"
        return FAULT, f"status {word} in {where} is not in the status map"
    return code, None


def decoder(channel: ModbusChannel) -> Callable[[list[int]], int | float | str]:
    """The function turning the channel's registers (or bits) into its value."""
    if channel.function in BIT_TABLES:
        return lambda bits: channel_value(bits[0], channel.scale, channel.offset)
    if channel.type == "bit":
        assert channel.bit is not None
        bit = channel.bit
        return lambda registers: channel_value(
            decode_bit(registers[0], bit), channel.scale, channel.offset
        )
    if channel.type == "string":
        return lambda registers: decode_string(registers, channel.order)
    if channel.type == "number_text":
        return lambda registers: text_number(
            decode_string(registers, channel.order), channel.scale, channel.offset
        )
    return value_decoder(channel.numeric_type, channel.order, channel.scale, channel.offset)
