"""Byte links under pymodbus's framers: a serial port (pyserial) and a TCP connection.

``drivers/modbus/wire.py`` writes the frames pymodbus builds and reads answers through these,
each read bounded by a deadline.

Every failure to open or keep the link becomes ``LinkDown`` with a technician's sentence; the
bus closes the link and reopens it on a later request (see ``drivers/modbus/bus.py``).
"""

from __future__ import annotations

import errno
import select
import socket
import termios
import time

import serial

from drivers.modbus.wire import LinkDown, remaining


class SerialLink:
    """A serial port, opened exclusively, in raw mode."""

    def __init__(self, port: str, baudrate: int, parity: str, stopbits: int, bytesize: int) -> None:
        self.port, self.baudrate = port, baudrate
        self.parity, self.stopbits, self.bytesize = parity, stopbits, bytesize
        self._serial: serial.Serial | None = None

    def open(self, timeout_s: float) -> None:
        try:
            self._serial = serial.Serial(
                self.port,
                self.baudrate,
                bytesize=self.bytesize,
                parity=self.parity,
                stopbits=self.stopbits,
                timeout=timeout_s,
                write_timeout=max(1.0, timeout_s),
                exclusive=True,
            )
        except (serial.SerialException, OSError) as exc:
            raise LinkDown(self._open_failure(exc)) from None

    def _open_failure(self, exc: Exception) -> str:
        code = getattr(exc, "errno", None)
        text = str(exc)
        if code == errno.ENOENT or "No such file" in text:
            return (
                f"cannot open {self.port}: no such device — check that the USB-serial adapter "
                "is plugged in and the port name"
            )
        if code == errno.EACCES or "Permission denied" in text:
            return (
                f"cannot open {self.port}: permission denied — add the agent's user to the "
                "'dialout' group"
            )
        if "lock" in text.lower() or code in (errno.EBUSY, errno.EAGAIN):
            return f"cannot open {self.port}: in use by another program — stop it, then retry"
        return f"cannot open {self.port} ({text}) — check the port name and the adapter"

    def _lost(self, exc: Exception) -> LinkDown:
        return LinkDown(
            f"serial port {self.port} failed ({exc}) — the adapter was unplugged or failed; "
            "the agent reopens it by itself"
        )

    def write(self, data: bytes) -> None:
        assert self._serial is not None
        try:
            self._serial.write(data)
            self._serial.flush()
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from None

    def read(self, size: int, deadline: float) -> bytes:
        assert self._serial is not None
        data = b""
        try:
            while len(data) < size and (left := remaining(deadline)) > 0:
                self._serial.timeout = left
                data += self._serial.read(size - len(data))
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from None
        return data

    def discard_input(self) -> None:
        assert self._serial is not None
        try:
            self._serial.reset_input_buffer()
        except (serial.SerialException, OSError, termios.error) as exc:
            raise self._lost(exc) from None

    def close(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except (serial.SerialException, OSError):
                pass
            self._serial = None


class TcpLink:
    """A TCP connection to a Modbus TCP device or a serial device server.

    The socket is non-blocking: a read waits with ``poll`` for what is left of its deadline and
    takes whatever has arrived (a whole answer, usually) in one ``recv``, keeping bytes beyond
    the ``size`` asked for the next read. One answer thus costs a ``poll`` and a ``recv``, where
    a socket timeout set per read cost an ``ioctl``, a ``poll`` and a ``recv`` for the MBAP
    header and again for the rest (and the GIL given up and taken back around each).
    """

    _CHUNK = 4096  # bytes taken at once: any Modbus answer (at most 260) and some more

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._sock: socket.socket | None = None
        self._poll = select.poll()
        self._kept = b""  # received beyond what the last read asked for
        self._send_timeout_s = 1.0

    def open(self, timeout_s: float) -> None:
        check = "— check network, IP address, port"
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=timeout_s)
        except socket.gaierror as exc:
            raise LinkDown(
                f"cannot resolve host name {self.host!r} ({exc.strerror}) — check the host "
                "setting and DNS"
            ) from None
        except ConnectionRefusedError:
            raise LinkDown(
                f"connection refused — check that the device is on and serves Modbus TCP on "
                f"port {self.port}, and the IP address"
            ) from None
        except TimeoutError:
            raise LinkDown(f"no connection in {timeout_s} s {check}") from None
        except OSError as exc:
            raise LinkDown(f"cannot connect ({exc.strerror or exc}) {check}") from None
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.setblocking(False)
        self._poll = select.poll()
        self._poll.register(self._sock, select.POLLIN)
        self._kept = b""
        self._send_timeout_s = timeout_s

    def _lost(self, exc: Exception | None = None) -> LinkDown:
        why = f" ({exc})" if exc else ""
        return LinkDown(
            f"connection closed by the device during a request{why} — check the unit id and "
            "that the device accepts another Modbus TCP client"
        )

    def write(self, data: bytes) -> None:
        assert self._sock is not None
        deadline = time.monotonic() + self._send_timeout_s
        view = memoryview(data)
        try:
            while view:
                try:
                    view = view[self._sock.send(view) :]
                except BlockingIOError:  # the send buffer is full: wait for room
                    left = remaining(deadline)
                    if left <= 0 or not select.select([], [self._sock], [], left)[1]:
                        raise TimeoutError("timed out") from None
        except OSError as exc:
            raise self._lost(exc) from None

    def read(self, size: int, deadline: float) -> bytes:
        assert self._sock is not None
        data, self._kept = self._kept[:size], self._kept[size:]
        while len(data) < size:
            left = remaining(deadline)
            if left <= 0 or not self._poll.poll(left * 1000):
                break
            try:
                chunk = self._sock.recv(self._CHUNK)
            except BlockingIOError:  # woken, yet nothing to read
                continue
            except OSError as exc:
                raise self._lost(exc) from None
            if not chunk:
                raise self._lost()
            wanted = size - len(data)
            data += chunk[:wanted]
            self._kept = chunk[wanted:]
        return data

    def discard_input(self) -> None:
        assert self._sock is not None
        self._kept = b""
        while True:
            try:
                chunk = self._sock.recv(self._CHUNK)
            except BlockingIOError:  # nothing (more) waiting
                return
            except OSError as exc:
                raise self._lost(exc) from None
            if not chunk:
                raise self._lost()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._kept = b""


def sleep_until(when: float) -> None:
    """Sleep until the monotonic instant ``when`` (no-op if past)."""
    delay = when - time.monotonic()
    if delay > 0:
        time.sleep(delay)
