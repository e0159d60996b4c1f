"""Modbus RTU devices on a pseudo-terminal: the serial bus for tests and bench work.

``ModbusRtuSimulator`` opens a pty pair in Python (no socat needed), serves every unit id of its
``ModbusServerCore`` on the master side and exposes the slave side at a stable symlink
(``path``), which the driver opens as its serial port. ``vanish()`` closes the pty and removes
the symlink, as when a USB-serial adapter is unplugged (an open port then fails with EIO);
``reappear()`` creates a new pty behind the same symlink.

``line`` (optional) holds the settings the devices expect (baudrate, parity, stopbits,
bytesize): a request sent with other settings gets no answer, as on a real bus, which lets a
scan find the right baud rate. A delayed answer is written later from a timer, so one slow
device does not hold up the answers of the others.
"""

from __future__ import annotations

import os
import select
import tempfile
import termios
import threading
import tty
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from simulators.modbus_server import (
    Fault,
    ModbusDevice,
    ModbusServerCore,
    rtu_answer,
    rtu_frames,
)

_SPEEDS = {
    getattr(termios, f"B{b}"): b for b in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
}


@dataclass(frozen=True)
class LineSettings:
    """Serial settings the simulated devices expect; None means "any"."""

    baudrate: int | None = None
    parity: str | None = None
    stopbits: int | None = None
    bytesize: int | None = None

    def matches(self, fd: int) -> bool:
        """Whether the port's current settings (as the driver set them) are these."""
        if self == LineSettings():
            return True
        iflag, oflag, cflag, lflag, ispeed, ospeed, cc = termios.tcgetattr(fd)
        parity = "N" if not cflag & termios.PARENB else ("O" if cflag & termios.PARODD else "E")
        actual = {
            "baudrate": _SPEEDS.get(ospeed),
            "parity": parity,
            "stopbits": 2 if cflag & termios.CSTOPB else 1,
            "bytesize": 7 if cflag & termios.CSIZE == termios.CS7 else 8,
        }
        return all(getattr(self, name) in (None, value) for name, value in actual.items())


class ModbusRtuSimulator(ModbusServerCore):
    """RTU devices on a pty; ``path`` is the symlink to open as the serial port."""

    def __init__(
        self,
        devices: Mapping[int, ModbusDevice],
        *,
        path: str | Path | None = None,
        line: LineSettings | None = None,
        no_answer: bool = False,
        delay_s: float = 0.0,
        exception_code: int | None = None,
        faults: Mapping[int, Fault] | None = None,
    ) -> None:
        super().__init__(
            devices,
            no_answer=no_answer,
            delay_s=delay_s,
            exception_code=exception_code,
            faults=faults,
        )
        if path is None:
            self._tmp = tempfile.mkdtemp(prefix="modbus-rtu-")
            path = Path(self._tmp) / "ttyMODBUS0"
        self.path = str(path)
        self.line = line or LineSettings()
        self.tty_name = ""
        self._master: int | None = None
        self._slave: int | None = None
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()

    def start(self) -> Self:
        """Create the pty and the symlink, and serve in the background."""
        if self._master is not None:
            return self
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing: bytes pass as they are
        self.tty_name = os.ttyname(slave)
        self._master, self._slave = master, slave
        link = Path(self.path)
        link.unlink(missing_ok=True)
        link.symlink_to(self.tty_name)
        self._thread = threading.Thread(
            target=self._serve, args=(master,), name=f"modbus-rtu-{self.tty_name}", daemon=True
        )
        self._thread.start()
        return self

    def vanish(self) -> None:
        """Unplug: remove the symlink and close the pty (an open port fails with EIO)."""
        Path(self.path).unlink(missing_ok=True)
        master, self._master = self._master, None
        slave, self._slave = self._slave, None
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        with self._write_lock:
            for fd in (master, slave):
                if fd is not None:
                    os.close(fd)

    def _serve(self, master: int) -> None:
        buffer = b""
        while self._master == master:
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                buffer = b""  # silence ends any partial frame, as RTU's 3.5-character gap does
                continue
            try:
                chunk = os.read(master, 512)
            except OSError:
                return
            if not self.line.matches(master):
                continue  # at the wrong baud rate or parity the devices hear only noise
            frames, buffer = rtu_frames(buffer + chunk)
            for frame in frames:
                self._dispatch(master, frame)

    def _dispatch(self, master: int, frame: bytes) -> None:
        unit = frame[0]
        response, fault = self.answer(unit, frame[1:-2])
        if response is None or unit == 0:
            return
        data = rtu_answer(unit, response, fault)
        if fault.delay_s > 0:
            timer = threading.Timer(fault.delay_s, self._write, args=(master, data))
            timer.daemon = True
            timer.start()
        else:
            self._write(master, data)

    def _write(self, master: int, data: bytes) -> None:
        with self._write_lock:
            if self._master != master:
                return  # unplugged meanwhile
            try:
                os.write(master, data)
            except OSError:
                pass
