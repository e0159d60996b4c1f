"""One SDI-12 bus on a serial port: break and marking, one command and its answer, retries.

Timing (SDI-12 v1.4, section 7): a sensor sleeps after 100 ms of marking, so before a command
on a line idle for more than ``break_idle_s`` (87 ms) the driver sends a break (at least
12 ms of spacing) and then marks for 8.33 ms. A sensor starts its answer within 15 ms; the
driver waits ``first_byte_s`` for it (USB adapters add latency). With no valid answer it
sends the command again, up to ``retries`` times (a break first whenever the line has been idle
long enough again). An adapter that makes the break itself (``wake = "adapter"``) is sent none.
Received bytes are 7-bit; the command echoed by half-duplex adapters is dropped.
"""

from __future__ import annotations

import contextlib
import termios
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

from drivers.sdi12.protocol import MAX_ANSWER_CHARS, Sdi12Error, printable

T = TypeVar("T")
BREAK_S = 0.012
MARKING_S = 0.00833


class SerialPort(Protocol):
    """The part of ``serial.Serial`` the bus uses."""

    def write(self, data: bytes) -> int | None: ...

    def read(self, size: int = 1) -> bytes: ...

    def send_break(self, duration: float = 0.25) -> None: ...

    def reset_input_buffer(self) -> None: ...

    def close(self) -> None: ...


@contextlib.contextmanager
def _port_errors() -> Iterator[None]:
    """pyserial's break and flush raise ``termios.error`` when the adapter is gone (EIO): made
    an ``OSError``, the port failure the driver handles (closes the port, reopens it later)."""
    try:
        yield
    except termios.error as exc:
        raise OSError(*exc.args) from None


class Bus:
    """Commands on one bus; ``counts`` says what went wrong (by reason)."""

    def __init__(
        self,
        port: SerialPort,
        *,
        wake: str = "break",
        first_byte_s: float = 0.1,
        line_timeout_s: float = 1.0,
        retries: int = 3,
        break_idle_s: float = 0.087,
    ) -> None:
        self.port, self.wake = port, wake
        self.first_byte_s, self.line_timeout_s = first_byte_s, line_timeout_s
        self.retries, self.break_idle_s = retries, break_idle_s
        self.counts: Counter[str] = Counter()
        self.breaks = 0
        self._last_activity = float("-inf")
        self.log: list[str] = []  # the last exchanges, for probe
        self._rest = bytearray()  # bytes read past the end of the last line

    def _note(self, line: str) -> None:
        self.log = [*self.log[-39:], line]

    def _wake(self) -> None:
        if self.wake == "break" and time.monotonic() - self._last_activity > self.break_idle_s:
            with _port_errors():
                self.port.send_break(BREAK_S)
            self.breaks += 1
            time.sleep(MARKING_S)  # the marking the standard asks for after a break

    def command(self, command: str, check: Callable[[str], T], *, data: bool = False) -> T:
        """Send ``command`` (e.g. ``0M!``); return ``check(answer)`` (the answer's text without
        CR LF; ``check`` raises Sdi12Error for an answer to try again). ``data``: a bare
        address line is a service request come late, and the answer is the next line.
        Sdi12Error naming the command after the last try."""
        problem = "no answer"
        for attempt in range(self.retries + 1):
            if attempt:
                self.counts["retry"] += 1
            self._wake()
            with _port_errors():
                self.port.reset_input_buffer()
            self._rest.clear()
            self.port.write(command.encode("ascii"))
            self._last_activity = time.monotonic()
            try:
                answer = self.read_line(command, self.first_byte_s)
            except Sdi12Error as exc:
                problem = str(exc)
                self.counts["garbled" if "garbled" in problem else "bad_answer"] += 1
                self._note(f"{command} -> {problem}")
                continue
            if data and answer == command[0]:
                self.counts["late_service_request"] += 1
                try:
                    answer = self.read_line(command, self.first_byte_s) or answer
                except Sdi12Error:
                    pass
            if answer is None:
                problem = "no answer"
                self.counts["no_answer"] += 1
                self._note(f"{command} -> (no answer)")
                continue
            self._note(f"{command} -> {answer}")
            try:
                return check(answer)
            except Sdi12Error as exc:
                problem = str(exc)
                self.counts["crc" if "CRC" in problem else "bad_answer"] += 1
        raise Sdi12Error(f"{command}: {problem} (after {self.retries + 1} tries)")

    def read_line(self, command: str, first_byte_s: float) -> str | None:
        """One answer line: None if nothing came in ``first_byte_s``; Sdi12Error if it is
        garbled, longer than the standard allows or not ended within ``line_timeout_s``."""
        data, self._rest = self._rest, bytearray()  # a line may have come with the last one
        deadline = time.monotonic() + (self.line_timeout_s if data else first_byte_s)
        while True:
            if time.monotonic() >= deadline:
                if not data:
                    return None
                raise Sdi12Error(f"answer {bytes(data)[:40]!r} not ended by CR LF in time")
            chunk = self.port.read(MAX_ANSWER_CHARS * 2) if b"\n" not in data else b""
            if chunk or b"\n" in data:
                if not data:
                    deadline = time.monotonic() + self.line_timeout_s
                data += chunk
                self._last_activity = time.monotonic()
                end = data.find(b"\n")
                if end >= 0:
                    self._rest = data[end + 1 :]
                    line = printable(bytes(data[:end]).rstrip(b"\r"))
                    if "!" in line:  # the command's echo (half-duplex adapters)
                        line = line[line.rindex("!") + 1 :]
                        if not line:
                            data, self._rest = self._rest, bytearray()
                            continue
                    return line
                if len(data) > MAX_ANSWER_CHARS * 2:
                    raise Sdi12Error(f"answer longer than {MAX_ANSWER_CHARS} characters")
            else:
                time.sleep(0.002)

    def wait_service_request(self, address: str, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the sensor's service request (``a`` CR LF)."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.read_line("", left)
            except Sdi12Error:
                self.counts["garbled"] += 1
                continue
            if line is None:
                return False
            if line == address:
                return True
            self._note(f"(while waiting for {address}'s service request) {line!r}")
        return False
