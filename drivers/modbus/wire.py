"""Modbus on the wire, done by pymodbus: request PDUs, RTU frames (CRC-16), Modbus TCP (MBAP).

pymodbus (>= 3.10, < 4) builds each read request (``ReadHoldingRegistersRequest``...), frames
it (``FramerRTU`` with its CRC, ``FramerSocket`` with the MBAP header), says how long an RTU
answer is from its first bytes, checks its CRC, unpacks the answer frame and decodes its PDU
(``DecodePDU``). Its clients (``ModbusTcpClient``, ``ModbusSerialClient``) are not used; this
module reads the bytes itself from a ``Link`` (``drivers/modbus/link.py``) against a deadline,
exactly as many as pymodbus says the frame has, so that

* a try never outlasts its timeout (the sync clients restart their wait after each chunk
  received, and 3.10's has no overall deadline at all);
* a CRC error or half a frame is told as such at once, where the clients wait out the timeout
  and report no response;
* an RTU answer from another unit id (a late answer to an earlier request) is skipped without
  swallowing the answer behind it (pymodbus's RTU decoder takes the rest of its buffer with a
  frame), as is an MBAP frame with another transaction id;
* an MBAP answer with this transaction id but another unit id, or to another function, is a
  ``BadAnswer``, never taken as the asked device's registers (a gateway mixing up its devices).

``rtu_transaction`` and ``mbap_transaction`` send one request and return the decoded answer,
or raise ``NoAnswer`` (nothing before the deadline), ``BadAnswer`` (CRC error, incomplete
frame, not Modbus) or ``LinkDown`` (the port or connection is gone). ``parse_read`` turns the
answer into registers, bits or the Modbus exception code.
"""

from __future__ import annotations

import struct
import time
from typing import Protocol

from drivers.modbus.without_asyncio import asyncio_on_first_use

with asyncio_on_first_use():  # pymodbus.pdu imports asyncio for an annotation (issue 33)
    from pymodbus.exceptions import ModbusException
    from pymodbus.framer import FramerRTU, FramerSocket
    from pymodbus.pdu import DecodePDU, ModbusPDU
    from pymodbus.pdu.bit_message import ReadCoilsRequest, ReadDiscreteInputsRequest
    from pymodbus.pdu.register_message import (
        ReadHoldingRegistersRequest,
        ReadHoldingRegistersResponse,
        ReadInputRegistersRequest,
        ReadInputRegistersResponse,
    )

_REQUESTS: dict[str, type[ModbusPDU]] = {
    "coil": ReadCoilsRequest,
    "discrete": ReadDiscreteInputsRequest,
    "holding": ReadHoldingRegistersRequest,
    "input": ReadInputRegistersRequest,
}
# Register answers (FC3, FC4), once their shape is checked, are unpacked here: what a poll
# receives by the hundred a second (pymodbus's decoder formats a debug line for each).
_REGISTER_ANSWERS: dict[int, type[ModbusPDU]] = {
    3: ReadHoldingRegistersResponse,
    4: ReadInputRegistersResponse,
}
_DECODER = DecodePDU(False)  # answers (the client side); holds no state per frame
_RTU = FramerRTU(_DECODER)
_MBAP = FramerSocket(_DECODER)
# what pymodbus raises on bytes it cannot make sense of (3.10 lets struct.error through)
_UNDECODABLE = (ModbusException, ValueError, IndexError, KeyError, struct.error)


class LinkError(Exception):
    """A request got no usable answer; the text is meant for a technician."""


class NoAnswer(LinkError):
    """Nothing came back before the deadline."""


class BadAnswer(LinkError):
    """Something came back, but not a whole, valid Modbus answer.

    ``kind`` names the fault for the error counters (``/metrics``): ``crc``, ``incomplete``,
    ``unit_mismatch``, ``function_mismatch`` or ``malformed``.
    """

    def __init__(self, message: str, kind: str = "malformed") -> None:
        super().__init__(message)
        self.kind = kind


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


def read_request(function: str, address: int, count: int, unit: int) -> ModbusPDU:
    """The pymodbus request reading ``count`` registers or bits from ``address`` of a table."""
    return _REQUESTS[function](address=address, count=count, dev_id=unit)


def parse_read(answer: ModbusPDU, function: str, count: int) -> list[int] | int:
    """Registers (or bits, 0/1) of a read answer, or the Modbus exception code it carries."""
    if answer.isError():
        return answer.exception_code
    if function in ("coil", "discrete"):
        got = len(answer.bits) // 8
        if got != (count + 7) // 8:
            raise BadAnswer(f"answered {got} bytes of bits to a request for {count} bits")
        return [int(bit) for bit in answer.bits[:count]]
    if len(answer.registers) != count:
        raise BadAnswer(f"answered {len(answer.registers)} registers to a request for {count}")
    return list(answer.registers)


def _decode(pdu: bytes, request: ModbusPDU) -> ModbusPDU:
    """The answer PDU decoded by pymodbus, once its shape fits the request.

    The shape is checked first: pymodbus ignores bytes beyond the byte count (even half a
    register) and logs a warning for each answer it cannot decode.
    """
    code = request.function_code
    error = len(pdu) >= 2 and pdu[0] == code | 0x80
    if not error and (len(pdu) < 2 or pdu[0] != code or len(pdu) != 2 + pdu[1]):
        raise BadAnswer(f"malformed answer to function {code} ({pdu.hex(' ')})")
    if not error and code in (3, 4):
        if pdu[1] % 2:
            raise BadAnswer(f"answered {pdu[1] // 2} registers to a request for {request.count}")
        registers = list(struct.unpack_from(f">{pdu[1] // 2}H", pdu, 2))
        return _REGISTER_ANSWERS[code](registers=registers, dev_id=request.dev_id)
    try:
        answer = _DECODER.decode(pdu)
    except _UNDECODABLE:
        answer = None
    if answer is None:
        raise BadAnswer(f"malformed answer to function {code} ({pdu.hex(' ')})")
    if code in (1, 2) and not error:
        # pymodbus 3.10 lists the bytes of a bit answer last first (pymodbus issue 2630, fixed
        # later); the Modbus spec puts the first bit in the low bit of the first byte
        answer.bits = [bool(byte >> bit & 1) for byte in pdu[2:] for bit in range(8)]
    return answer


def _rtu_length(head: bytes) -> int | None:
    """Length of a whole RTU answer from its first 3 bytes, as pymodbus reckons it."""
    try:
        pdu_class = _DECODER.lookupPduClass(head)
        length = pdu_class.calculateRtuFrameSize(head) if pdu_class is not None else 0
    except _UNDECODABLE:
        return None
    return length if length >= 4 else None


def rtu_transaction(link: Link, request: ModbusPDU, deadline: float) -> ModbusPDU:
    """Send one RTU request and return the answer (see the module docstring)."""
    link.discard_input()  # a late answer to an earlier request must not be taken for this one
    link.write(_RTU.buildFrame(request))
    while True:
        head = link.read(3, deadline)
        if not head:
            raise NoAnswer("no answer")
        if len(head) < 3:
            raise BadAnswer(f"incomplete answer ({len(head)} bytes)", "incomplete")
        length = _rtu_length(head)
        if length is None:
            raise BadAnswer(f"garbled answer (function {head[1]}, bytes {head.hex(' ')})")
        frame = head + link.read(length - 3, deadline)
        if len(frame) < length:
            raise BadAnswer(f"incomplete answer ({len(frame)} of {length} bytes)", "incomplete")
        if not FramerRTU.check_CRC(frame[:-2], int.from_bytes(frame[-2:], "big")):
            raise BadAnswer("garbled answer (CRC error)", "crc")
        _, unit, _, pdu = _RTU.decode(frame)
        if not pdu:
            raise BadAnswer(f"garbled answer ({frame.hex(' ')})")
        if unit != request.dev_id:
            continue  # another device's late answer
        if pdu[0] & 0x7F != request.function_code:
            raise BadAnswer(
                f"answer to function {pdu[0] & 0x7F}, asked {request.function_code}",
                "function_mismatch",
            )
        return _decode(pdu, request)


class MbapCounter:
    """Transaction ids for one Modbus TCP connection."""

    def __init__(self) -> None:
        self.value = 0

    def next(self) -> int:
        self.value = (self.value + 1) & 0xFFFF
        return self.value


def mbap_transaction(
    link: Link, request: ModbusPDU, deadline: float, tids: MbapCounter
) -> ModbusPDU:
    """Send one Modbus TCP request and return the answer (see the module docstring)."""
    request.transaction_id = tids.next()
    link.write(_MBAP.buildFrame(request))
    while True:
        head = link.read(7, deadline)
        if not head:
            raise NoAnswer("no answer")
        if len(head) < 7:
            raise BadAnswer(f"incomplete answer ({len(head)} bytes)", "incomplete")
        # the MBAP length says how much to read; pymodbus unpacks the frame once it is whole
        protocol, length = struct.unpack(">HH", head[2:6])
        if protocol != 0 or not 2 <= length <= 254:
            raise BadAnswer(f"not a Modbus TCP answer ({head.hex(' ')})")
        body = link.read(length - 1, deadline)
        if len(body) < length - 1:
            raise BadAnswer(
                f"incomplete answer ({7 + len(body)} of {6 + length} bytes)", "incomplete"
            )
        _, unit, tid, pdu = _MBAP.decode(head + body)
        if not pdu:
            raise BadAnswer(f"not a Modbus TCP answer ({head.hex(' ')})")
        if tid != request.transaction_id:
            continue  # an answer to an earlier request that timed out
        if unit != request.dev_id:
            raise BadAnswer(
                f"answer from unit {unit}, asked unit {request.dev_id}", "unit_mismatch"
            )
        if pdu[0] & 0x7F != request.function_code:
            raise BadAnswer(
                f"answer to function {pdu[0] & 0x7F}, asked {request.function_code}",
                "function_mismatch",
            )
        return _decode(pdu, request)


def remaining(deadline: float) -> float:
    """Seconds left until ``deadline`` (monotonic), never negative."""
    return max(0.0, deadline - time.monotonic())
