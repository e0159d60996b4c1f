"""Modbus on the wire: request PDUs, RTU frames (CRC-16) and Modbus TCP (MBAP) frames.

``rtu_transaction`` and ``mbap_transaction`` send one request over a ``Link`` and return the
answer's PDU, or raise ``NoAnswer`` (nothing before the deadline), ``BadAnswer`` (CRC error,
incomplete frame, not Modbus) or ``LinkDown`` (the port or connection is gone). An RTU frame
from another unit id (a late answer to an earlier request) is skipped, as is an MBAP frame with
another transaction id.
"""

from __future__ import annotations

import struct
import time
from typing import Protocol

from drivers.modbus_config import FUNCTION_CODES


class LinkError(Exception):
    """A request got no usable answer; the text is meant for a technician."""


class NoAnswer(LinkError):
    """Nothing came back before the deadline."""


class BadAnswer(LinkError):
    """Something came back, but not a whole, valid Modbus answer."""


class LinkDown(LinkError):
    """The serial port or the TCP connection cannot be opened or failed."""


class Link(Protocol):
    """A byte stream to one bus or device: a serial port or a TCP connection."""

    def open(self, timeout_s: float) -> None: ...

    def write(self, data: bytes) -> None: ...

    def read(self, size: int, deadline: float) -> bytes:
        """Up to ``size`` bytes; fewer only when ``deadline`` (monotonic) passed."""
        ...

    def discard_input(self) -> None: ...

    def close(self) -> None: ...


def read_pdu(function: str, address: int, count: int) -> bytes:
    """The request PDU reading ``count`` registers or bits from ``address`` of a table."""
    return struct.pack(">BHH", FUNCTION_CODES[function], address, count)


def parse_read(pdu: bytes, function: str, count: int) -> list[int] | int:
    """Registers (or bits, 0/1) of a read answer, or the Modbus exception code it carries."""
    code = FUNCTION_CODES[function]
    if pdu and pdu[0] == code | 0x80 and len(pdu) >= 2:
        return pdu[1]
    if len(pdu) < 2 or pdu[0] != code or len(pdu) != 2 + pdu[1]:
        raise BadAnswer(f"malformed answer to function {code} ({pdu.hex(' ')})")
    data = pdu[2:]
    if function in ("coil", "discrete"):
        if len(data) != (count + 7) // 8:
            raise BadAnswer(f"answered {len(data)} bytes of bits to a request for {count} bits")
        return [(data[i // 8] >> (i % 8)) & 1 for i in range(count)]
    if len(data) != 2 * count:
        raise BadAnswer(f"answered {len(data) // 2} registers to a request for {count}")
    return list(struct.unpack(f">{count}H", data))


def crc16(data: bytes) -> int:
    """Modbus RTU CRC-16 (polynomial 0xA001, initial 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def rtu_frame(unit: int, pdu: bytes) -> bytes:
    """Unit id + PDU + CRC (low byte first)."""
    body = bytes([unit]) + pdu
    return body + struct.pack("<H", crc16(body))


def rtu_answer_length(head: bytes) -> int | None:
    """Length of a whole RTU answer from its first 3 bytes, or None for an unknown function."""
    function = head[1]
    if function & 0x80:
        return 5
    if function in (1, 2, 3, 4):
        return 3 + head[2] + 2
    if function in (5, 6, 15, 16):
        return 8
    return None


def rtu_transaction(link: Link, unit: int, pdu: bytes, deadline: float) -> bytes:
    """Send one RTU request and return the answer PDU (see the module docstring)."""
    link.discard_input()  # a late answer to an earlier request must not be taken for this one
    link.write(rtu_frame(unit, pdu))
    while True:
        head = link.read(3, deadline)
        if not head:
            raise NoAnswer("no answer")
        if len(head) < 3:
            raise BadAnswer(f"incomplete answer ({len(head)} bytes)")
        length = rtu_answer_length(head)
        if length is None:
            raise BadAnswer(f"garbled answer (function {head[1]}, bytes {head.hex(' ')})")
        rest = link.read(length - 3, deadline)
        frame = head + rest
        if len(frame) < length:
            raise BadAnswer(f"incomplete answer ({len(frame)} of {length} bytes)")
        if crc16(frame[:-2]) != struct.unpack("<H", frame[-2:])[0]:
            raise BadAnswer("garbled answer (CRC error)")
        if frame[0] != unit:
            continue  # another device's late answer
        if frame[1] & 0x7F != pdu[0]:
            raise BadAnswer(f"answer to function {frame[1] & 0x7F}, asked {pdu[0]}")
        return frame[1:-2]


class MbapCounter:
    """Transaction ids for one Modbus TCP connection."""

    def __init__(self) -> None:
        self.value = 0

    def next(self) -> int:
        self.value = (self.value + 1) & 0xFFFF
        return self.value


def mbap_transaction(
    link: Link, unit: int, pdu: bytes, deadline: float, tids: MbapCounter
) -> bytes:
    """Send one Modbus TCP request and return the answer PDU (see the module docstring)."""
    tid = tids.next()
    link.write(struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu)
    while True:
        head = link.read(7, deadline)
        if not head:
            raise NoAnswer("no answer")
        if len(head) < 7:
            raise BadAnswer(f"incomplete answer ({len(head)} bytes)")
        answer_tid, protocol, length, _ = struct.unpack(">HHHB", head)
        if protocol != 0 or not 2 <= length <= 254:
            raise BadAnswer(f"not a Modbus TCP answer ({head.hex(' ')})")
        body = link.read(length - 1, deadline)
        if len(body) < length - 1:
            raise BadAnswer(f"incomplete answer ({7 + len(body)} of {6 + length} bytes)")
        if answer_tid == tid:
            return body


def remaining(deadline: float) -> float:
    """Seconds left until ``deadline`` (monotonic), never negative."""
    return max(0.0, deadline - time.monotonic())
