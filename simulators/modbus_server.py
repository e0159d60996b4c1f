"""A hand-rolled Modbus server for tests and demos: register maps, a PDU core, framers.

Layers:

* ``ModbusDevice``: the register tables of one unit id, plus addresses that answer exception 2.
* ``handle_pdu(device, pdu)``: answers function codes 1, 2, 3, 4, 6 and 16 with a response or an
  exception PDU (1 illegal function, 2 illegal data address, 3 illegal data value).
* ``ModbusServerCore``: devices by unit id, request counters and log, fault injection for every
  unit (attributes ``no_answer``, ``delay_s``, ``exception_code``) or one unit (``faults[unit]``,
  a ``Fault``: also ``corrupt_crc``, ``truncate`` and ``wrong_unit``); ``answer(unit, pdu)``
  returns the response PDU (None for no answer: unknown unit id, or ``no_answer``) and the
  fault to apply.
  ``absent_exception`` (10 or 11) makes it a gateway: a unit id with no device behind it gets
  that exception instead of silence.
* ``ModbusTcpSimulator``: a TCP server, a thread per connection, with MBAP framing (``framer``
  "tcp") or RTU frames (``framer`` "rtu", a serial device server); ``vanish()`` and
  ``reappear()`` take the whole device off the network and back on the same port.
* ``simulators/modbus_rtu.py``: the same core on a pseudo-terminal, for Modbus RTU.

The simulator keeps its own RTU framing (``rtu_frame``, ``crc16``), independent of the
driver's (pymodbus), so that it can inject faults and the two check each other.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import NamedTuple, Self

ILLEGAL_FUNCTION = 1
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3

_BIT_TABLES = {1: "coils", 2: "discrete"}
_REGISTER_TABLES = {3: "holding", 4: "input"}


class ModbusDevice:
    """Register tables of one unit id; ``refresh`` is called before each request is served."""

    def __init__(
        self,
        *,
        holding: Mapping[int, int] | None = None,
        input: Mapping[int, int] | None = None,
        coils: Mapping[int, bool] | None = None,
        discrete: Mapping[int, bool] | None = None,
    ) -> None:
        self.tables: dict[str, dict[int, int]] = {
            "holding": dict(holding or {}),
            "input": dict(input or {}),
            "coils": {a: int(bool(v)) for a, v in (coils or {}).items()},
            "discrete": {a: int(bool(v)) for a, v in (discrete or {}).items()},
        }
        self.forbidden: list[tuple[str, range]] = []
        self.lock = threading.Lock()

    @property
    def holding(self) -> dict[int, int]:
        return self.tables["holding"]

    @property
    def input(self) -> dict[int, int]:
        return self.tables["input"]

    def set_registers(self, address: int, registers: list[int], table: str = "holding") -> None:
        """Define or overwrite consecutive registers starting at ``address``."""
        for offset, value in enumerate(registers):
            self.tables[table][address + offset] = value & 0xFFFF

    def forbid(self, address: int, count: int = 1, table: str = "holding") -> None:
        """Make requests touching these addresses answer exception 2 (illegal data address)."""
        self.forbidden.append((table, range(address, address + count)))

    def allow(self) -> None:
        """Remove every forbidden range."""
        self.forbidden.clear()

    def refresh(self) -> None:
        """Update values before a request is served; presets override this."""


class _Refused(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def handle_pdu(device: ModbusDevice, pdu: bytes) -> bytes:
    """Answer one request PDU from the device's tables: a response or an exception PDU."""
    function = pdu[0] if pdu else 0
    handler = _HANDLERS.get(function)
    try:
        if handler is None:
            raise _Refused(ILLEGAL_FUNCTION)
        with device.lock:
            device.refresh()
            return handler(device, pdu)
    except struct.error:  # request shorter than its function code needs
        return bytes([function | 0x80, ILLEGAL_DATA_VALUE])
    except _Refused as refused:
        return bytes([function | 0x80, refused.code])


def request_fields(pdu: bytes) -> tuple[int, int, int]:
    """(function, address, count) of a request PDU, for logs; zeros where it has none."""
    function = pdu[0] if pdu else 0
    if function in (1, 2, 3, 4, 16) and len(pdu) >= 5:
        address, count = struct.unpack_from(">HH", pdu, 1)
        return function, address, count
    if function == 6 and len(pdu) >= 3:
        return function, struct.unpack_from(">H", pdu, 1)[0], 1
    return function, 0, 0


def _check(device: ModbusDevice, table: str, address: int, count: int, limit: int) -> None:
    """Refuse a bad count (exception 3) or an address not served (exception 2)."""
    if not 1 <= count <= limit:
        raise _Refused(ILLEGAL_DATA_VALUE)
    cells = device.tables[table]
    for a in range(address, address + count):
        if a not in cells or any(t == table and a in r for t, r in device.forbidden):
            raise _Refused(ILLEGAL_DATA_ADDRESS)


def _read_bits(device: ModbusDevice, pdu: bytes) -> bytes:
    table = _BIT_TABLES[pdu[0]]
    address, count = struct.unpack_from(">HH", pdu, 1)
    _check(device, table, address, count, 2000)
    packed = bytearray((count + 7) // 8)
    for i in range(count):
        if device.tables[table][address + i]:
            packed[i // 8] |= 1 << (i % 8)
    return bytes([pdu[0], len(packed)]) + bytes(packed)


def _read_registers(device: ModbusDevice, pdu: bytes) -> bytes:
    table = _REGISTER_TABLES[pdu[0]]
    address, count = struct.unpack_from(">HH", pdu, 1)
    _check(device, table, address, count, 125)
    values = [device.tables[table][address + i] for i in range(count)]
    return bytes([pdu[0], 2 * count]) + struct.pack(f">{count}H", *values)


def _write_register(device: ModbusDevice, pdu: bytes) -> bytes:
    address, value = struct.unpack_from(">HH", pdu, 1)
    _check(device, "holding", address, 1, 1)
    device.holding[address] = value
    return pdu[:5]


def _write_registers(device: ModbusDevice, pdu: bytes) -> bytes:
    address, count, byte_count = struct.unpack_from(">HHB", pdu, 1)
    if not 1 <= count <= 123 or byte_count != 2 * count or len(pdu) != 6 + byte_count:
        raise _Refused(ILLEGAL_DATA_VALUE)
    _check(device, "holding", address, count, 123)
    device.set_registers(address, list(struct.unpack_from(f">{count}H", pdu, 6)))
    return pdu[:5]


_HANDLERS: dict[int, Callable[[ModbusDevice, bytes], bytes]] = {
    1: _read_bits,
    2: _read_bits,
    3: _read_registers,
    4: _read_registers,
    6: _write_register,
    16: _write_registers,
}


class Request(NamedTuple):
    """One request as the server received it."""

    unit: int
    function: int
    address: int
    count: int


@dataclass(frozen=True)
class Fault:
    """What a unit does wrong: no answer, answer late, refuse, garble or cut its answer."""

    no_answer: bool = False
    delay_s: float = 0.0
    exception_code: int | None = None
    corrupt_crc: bool = False  # RTU framing only: the answer's CRC is wrong
    truncate: bool = False  # only the first half of the answer frame is sent
    wrong_unit: bool = False  # Modbus TCP only: the answer's MBAP header names unit + 1

    def describe(self) -> str:
        names = ("no_answer", "corrupt_crc", "truncate", "wrong_unit")
        parts = [name for name in names if getattr(self, name)]
        if self.delay_s:
            parts.append(f"delay {self.delay_s} s")
        if self.exception_code is not None:
            parts.append(f"exception {self.exception_code}")
        return ", ".join(parts) or "none"


class ModbusServerCore:
    """Devices by unit id, request counters, and faults; independent of the framing."""

    def __init__(
        self,
        devices: Mapping[int, ModbusDevice],
        *,
        no_answer: bool = False,
        delay_s: float = 0.0,
        exception_code: int | None = None,
        faults: Mapping[int, Fault] | None = None,
    ) -> None:
        self.devices = dict(devices)
        self.no_answer = no_answer  # drop every request silently
        self.delay_s = delay_s  # answer this late
        self.exception_code = exception_code  # answer every request with this exception
        self.faults: dict[int, Fault] = dict(faults or {})  # per unit id, on top of the above
        self.absent_exception: int | None = None  # a gateway's answer for a unit id not there
        self.requests: Counter[int] = Counter()  # requests received, by unit id
        self.log: list[Request] = []
        self._log_lock = threading.Lock()

    def fault(self, unit: int) -> Fault:
        """The faults that apply to ``unit`` now: its own, plus those set for every unit."""
        own = self.faults.get(unit, Fault())
        return replace(
            own,
            no_answer=own.no_answer or self.no_answer,
            delay_s=own.delay_s or self.delay_s,
            exception_code=own.exception_code
            if own.exception_code is not None
            else self.exception_code,
        )

    def answer(self, unit: int, pdu: bytes) -> tuple[bytes | None, Fault]:
        """Count the request; the response PDU (None: stay silent) and the fault to apply."""
        with self._log_lock:
            self.requests[unit] += 1
            self.log.append(Request(unit, *request_fields(pdu)))
        fault = self.fault(unit)
        device = self.devices.get(unit)
        if device is None and self.absent_exception is not None and pdu and not fault.no_answer:
            return bytes([pdu[0] | 0x80, self.absent_exception]), fault
        if device is None or fault.no_answer or not pdu:
            return None, fault
        if fault.exception_code is not None:
            return bytes([pdu[0] | 0x80, fault.exception_code]), fault
        return handle_pdu(device, pdu), fault

    def handle(self, unit: int, pdu: bytes) -> bytes | None:
        """The response PDU to a request for ``unit`` after any delay, or None for no answer."""
        response, fault = self.answer(unit, pdu)
        if response is not None and fault.delay_s > 0:
            time.sleep(fault.delay_s)
        return response

    def reset_counts(self) -> None:
        """Forget the requests counted so far."""
        with self._log_lock:
            self.requests.clear()
            self.log.clear()

    # Lifecycle shared by the TCP and RTU servers; each defines start() and vanish().
    def start(self) -> Self:
        raise NotImplementedError

    def vanish(self) -> None:
        raise NotImplementedError

    def reappear(self) -> None:
        """Come back after ``vanish()``: the same port, or a new pty behind the same link."""
        self.start()

    def stop(self) -> None:
        """Stop serving; same as ``vanish()``."""
        self.vanish()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


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


def rtu_answer(unit: int, pdu: bytes, fault: Fault) -> bytes:
    """The RTU frame answering ``pdu``, garbled or cut as ``fault`` says."""
    frame = rtu_frame(unit, pdu)
    if fault.corrupt_crc:
        frame = frame[:-1] + bytes([frame[-1] ^ 0x5A])
    if fault.truncate:
        frame = frame[: len(frame) // 2]
    return frame


def split_rtu_request(buffer: bytes) -> tuple[bytes | None, bytes]:
    """(one whole request frame, the rest) from received bytes; (None, buffer) if incomplete.

    A request to an unknown function code is taken to be everything received so far.
    """
    if len(buffer) < 2:
        return None, buffer
    function = buffer[1]
    if function in (1, 2, 3, 4, 5, 6):
        need = 8
    elif function in (15, 16):
        if len(buffer) < 7:
            return None, buffer
        need = 9 + buffer[6]
    else:
        need = len(buffer)
    if len(buffer) < need:
        return None, buffer
    return buffer[:need], buffer[need:]


def rtu_crc_ok(frame: bytes) -> bool:
    return len(frame) >= 4 and crc16(frame[:-2]) == struct.unpack("<H", frame[-2:])[0]


def rtu_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The whole request frames at the start of ``buffer`` and what is left of it. A frame with
    a bad CRC drops the rest: the device resynchronises, as after an RTU silence."""
    frames = []
    while True:
        frame, buffer = split_rtu_request(buffer)
        if frame is None:
            return frames, buffer
        if not rtu_crc_ok(frame):
            return frames, b""
        frames.append(frame)


class ModbusTcpSimulator(ModbusServerCore):
    """Modbus TCP server on a background thread; ``port=0`` picks a free port.

    ``framer`` "tcp" speaks Modbus TCP (MBAP); "rtu" speaks RTU frames over TCP, as a serial
    device server does.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        devices: Mapping[int, ModbusDevice] | None = None,
        *,
        no_answer: bool = False,
        delay_s: float = 0.0,
        exception_code: int | None = None,
        faults: Mapping[int, Fault] | None = None,
        framer: str = "tcp",
    ) -> None:
        super().__init__(
            devices if devices is not None else {1: ModbusDevice()},
            no_answer=no_answer,
            delay_s=delay_s,
            exception_code=exception_code,
            faults=faults,
        )
        if framer not in ("tcp", "rtu"):
            raise ValueError(f"framer must be 'tcp' or 'rtu', got {framer!r}")
        self.framer = framer
        self.host = host
        self.port = port
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()

    def start(self) -> Self:
        """Listen and serve in the background; returns once connections are accepted."""
        if self._listener is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(16)
        listener.settimeout(0.05)  # lets the acceptor notice vanish() promptly
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._acceptor = threading.Thread(
            target=self._accept, args=(listener,), name=f"modbus-sim-{self.port}", daemon=True
        )
        self._acceptor.start()
        return self

    def vanish(self) -> None:
        """Close the listening socket and every connection, as if the device lost power."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._acceptor is not None:
            self._acceptor.join(timeout=2)
            self._acceptor = None
        with self._conn_lock:
            connections, self._connections = self._connections, set()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in recv
            except OSError:
                pass
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            with self._conn_lock:
                self._connections.add(conn)
            serve = self._serve if self.framer == "tcp" else self._serve_rtu
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            while (header := _recv_exact(conn, 7)) is not None:
                tid, protocol, length, unit = struct.unpack(">HHHB", header)
                if protocol != 0 or not 2 <= length <= 254:
                    return  # not Modbus TCP: drop the connection, as devices do
                pdu = _recv_exact(conn, length - 1)
                if pdu is None:
                    return
                response, fault = self.answer(unit, pdu)
                if response is None:
                    continue
                if fault.delay_s > 0:
                    time.sleep(fault.delay_s)
                answering = (unit + 1) & 0xFF if fault.wrong_unit else unit
                frame = struct.pack(">HHHB", tid, 0, len(response) + 1, answering) + response
                conn.sendall(frame[: len(frame) // 2] if fault.truncate else frame)
        except OSError:
            pass
        finally:
            with self._conn_lock:
                self._connections.discard(conn)
            conn.close()

    def _serve_rtu(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            while chunk := conn.recv(512):
                frames, buffer = rtu_frames(buffer + chunk)
                for frame in frames:
                    response, fault = self.answer(frame[0], frame[1:-2])
                    if response is None or frame[0] == 0:
                        continue
                    if fault.delay_s > 0:
                        time.sleep(fault.delay_s)
                    conn.sendall(rtu_answer(frame[0], response, fault))
        except OSError:
            pass
        finally:
            with self._conn_lock:
                self._connections.discard(conn)
            conn.close()


def _recv_exact(conn: socket.socket, size: int) -> bytes | None:
    """Exactly ``size`` bytes, or None if the peer closed the connection first."""
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data
