"""Serial line driver: instruments that answer a request with one line of text over RS-232/485.

Its options (``config.py``), the pattern and escapes, what a poll does and how a reading gets
its status are in ``README.md``. Implementation notes: a poll drains stale input, sends the
request and reads until the terminator against a deadline, on a port opened exclusively; a
line that is cut, not text, does not match or fails its checksum is tried again; if no try got
a byte, ``read`` raises ``DeviceError`` (the poller then records fault readings).
"""

from __future__ import annotations

import errno
import math
import os
import re
import select
import termios
import time

import serial

from core.errors import DeviceError
from core.reading import FAULT, MEASURING, Reading
from drivers.base import Channel, ProbeRow
from drivers.serial_line.config import (
    _DEFAULT_MAP,
    SerialChannel,
    SerialLineConfig,
    decode_escapes,
)
from drivers.serial_line.lines import MAX_LINE_BYTES, Line, LineParser, Parsed, show

__all__ = ["SerialLineConfig", "SerialLineDriver", "decode_escapes"]

_DRAIN_BYTES = 65536  # at most this much stale input is discarded before a request


class _PortGone(Exception):
    """The port stopped working (unplugged adapter, hung-up pseudo-terminal)."""


class SerialLineDriver:
    """Polls one serial line instrument; not thread-safe (one poller calls it)."""

    def __init__(self, config: SerialLineConfig) -> None:
        self.config = config
        self.name = config.name
        self.channels = [Channel(c.param, c.unit) for c in config.channels]
        self._request = (
            decode_escapes(config.request, config.encoding) if config.request is not None else None
        )
        self._terminator = decode_escapes(config.terminator, config.encoding)
        self._pattern = re.compile(config.pattern)
        self._has_checked = "checked" in self._pattern.groupindex
        self._parse = LineParser(config, self._pattern, self._terminator).parse
        self._tries = config.retries + 1
        settings = f"{config.baudrate} {config.bytesize}{config.parity}{config.stopbits:g}"
        self._where = f"device {config.name!r} on {config.port} ({settings})"
        self._port: serial.Serial | None = None
        self._used = False  # the open port has completed an exchange
        self._last_io = 0.0

    def open(self) -> None:
        """Nothing to do up front: the port is opened by the first ``read``.

        A device unplugged at start-up thus shows as fault readings, not a start-up failure.
        """

    def close(self) -> None:
        """Close the port, if open; a later ``read`` reopens it."""
        if self._port is not None:
            try:
                self._port.close()
            except OSError:
                pass
            self._port = None

    def read(self, time_ms: int) -> list[Reading]:
        """Read every channel; raise ``DeviceError`` if the instrument does not answer."""
        line, parsed = self._exchange()
        return self._readings(parsed, time_ms)

    def parse(self, raw: bytes, time_ms: int, complete: bool = True) -> list[Reading]:
        """Readings from one received line (without its terminator); never raises."""
        return self._readings(self._parse(Line(raw, complete)), time_ms)

    def plan(self) -> list[str]:
        """What one poll does, one step per line."""
        cfg = self.config
        steps = [f"open {self._where[self._where.index(' on ') + 4 :]}, encoding {cfg.encoding}"]
        if self._request is None:
            steps.append("no request: skip the first line the instrument sends, take the next")
        else:
            pause = f"after {cfg.delay_s} s of silence " if cfg.delay_s else ""
            steps.append(f"discard pending input, {pause}send {show(self._request)}")
        steps.append(
            f"read until {show(self._terminator)}, at most {cfg.timeout_s} s, "
            f"{self._tries} {'try' if self._tries == 1 else 'tries'}"
        )
        steps.append(f"search pattern {cfg.pattern}")
        if cfg.checksum != "none":
            over = "group 'checked'" if self._has_checked else "the text before group 'checksum'"
            steps.append(f"check {cfg.checksum} of {over} against group 'checksum' (hex)")
        for channel in cfg.channels:
            step = f"{channel.param} [{channel.unit}] <- group {channel.value_group!r}"
            if channel.scale != 1 or channel.offset != 0:
                step += f" * {channel.scale:g} + {channel.offset:g}"
            status = self._status_group(channel)
            if status is not None:
                step += f", status <- group {status!r}"
            steps.append(step)
        return steps

    def probe(self, time_ms: int) -> list[ProbeRow]:
        """Read once, showing the raw line each channel came from; device faults go in ``error``."""
        try:
            line, parsed = self._exchange()
        except DeviceError as exc:
            return [
                ProbeRow(c.param, "", None, c.unit, FAULT, str(exc)) for c in self.config.channels
            ]
        rows = []
        for channel, reading in zip(
            self.config.channels, self._readings(parsed, time_ms), strict=True
        ):
            raw = show(line.raw)
            if parsed.match is not None and parsed.match.group(channel.value_group) is not None:
                raw = f"{channel.value_group}={parsed.match.group(channel.value_group)!r} in {raw}"
            rows.append(
                ProbeRow(
                    channel.param, raw, reading.value, reading.unit, reading.status, reading.error
                )
            )
        return rows

    # -- the exchange ---------------------------------------------------------------------

    def _exchange(self) -> tuple[Line, Parsed]:
        """The first good line of up to ``retries + 1`` tries, else the last bad one.

        Raises ``DeviceError`` when no try received a byte or the port cannot be used.
        """
        bad: tuple[Line, Parsed] | None = None
        for _ in range(self._tries):
            line = self._try_once()
            if not line.raw and not line.complete:
                continue  # silence
            parsed = self._parse(line)
            if parsed.error is None:
                return line, parsed
            bad = line, parsed
        if bad is not None:
            line, parsed = bad
            tries = f" ({self._tries} {'try' if self._tries == 1 else 'tries'})"
            return line, Parsed(None, f"{parsed.error}{tries}")
        check = (
            "the request string"
            if self._request is not None
            else "that the instrument sends lines by itself"
        )
        raise DeviceError(
            f"{self._where}: no answer in {self.config.timeout_s} s ({self._tries} "
            f"{'try' if self._tries == 1 else 'tries'}) — check wiring, baud rate, and {check}"
        )

    def _try_once(self) -> Line:
        reopened = False
        while True:
            port = self._open()
            try:
                line = self._talk(port)
            except (_PortGone, OSError, termios.error) as exc:
                used = self._used
                self.close()
                if used and not reopened:
                    reopened = True  # unplugged and back while idle: one fresh start, no error
                    continue
                reason = str(exc) or "hung up"
                raise DeviceError(
                    f"{self._where}: the port stopped working ({reason}) — check the USB "
                    "adapter and cable; the port is reopened at the next poll"
                ) from None
            finally:
                self._last_io = time.monotonic()
            self._used = True
            return line

    def _open(self) -> serial.Serial:
        if self._port is not None:
            return self._port
        cfg = self.config
        try:
            port = serial.Serial(
                port=cfg.port,
                baudrate=cfg.baudrate,
                bytesize=cfg.bytesize,
                parity=cfg.parity,
                stopbits=cfg.stopbits,
                timeout=0,
                write_timeout=cfg.timeout_s,
                exclusive=True,
            )
        except serial.SerialException as exc:
            raise DeviceError(f"{self._where}: {_open_failure(exc)}") from None
        except (ValueError, OSError) as exc:
            raise DeviceError(
                f"{self._where}: cannot open the port with these settings ({exc}) — check "
                "baudrate, bytesize, parity and stopbits"
            ) from None
        self._port, self._used = port, False
        return port

    def _talk(self, port: serial.Serial) -> Line:
        """One try: pause, discard stale input, send the request, read one line."""
        pause = self._last_io + self.config.delay_s - time.monotonic()
        if self._request is not None and pause > 0:
            time.sleep(pause)
        port.reset_input_buffer()
        _drain(port.fileno())
        if self._request is not None:
            try:
                port.write(self._request)
            except serial.SerialTimeoutException:
                raise _PortGone(
                    f"could not send the request in {self.config.timeout_s} s"
                ) from None
        return self._receive(port.fileno(), skip_first=self._request is None)

    def _receive(self, fd: int, skip_first: bool) -> Line:
        """Read until the terminator; never longer than ``timeout_s``."""
        term = self._terminator
        deadline = time.monotonic() + self.config.timeout_s
        buffer = bytearray()
        while True:
            end = buffer.find(term)
            if end >= 0 and skip_first:
                del buffer[: end + len(term)]
                skip_first = False
                continue
            if end >= 0:
                return Line(bytes(buffer[:end]), complete=True)
            if len(buffer) > MAX_LINE_BYTES:
                return Line(bytes(buffer[:MAX_LINE_BYTES]), complete=False, overlong=True)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Line(b"" if skip_first else bytes(buffer), complete=False)
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise _PortGone("the port hung up")
                buffer += chunk

    # -- parsing ----------------------------------------------------------------------------

    def _status_group(self, channel: SerialChannel) -> str | None:
        if channel.status_group:
            return channel.status_group
        return self.config.status.group if self.config.status is not None else None

    def _readings(self, parsed: Parsed, time_ms: int) -> list[Reading]:
        return [self._reading(c, parsed, time_ms) for c in self.config.channels]

    def _reading(self, channel: SerialChannel, parsed: Parsed, time_ms: int) -> Reading:
        def make(value: float | None, status: str, error: str | None = None) -> Reading:
            return Reading(self.name, channel.param, channel.unit, time_ms, value, status, error)

        if parsed.match is None:
            return make(None, FAULT, parsed.error or "no line")
        group = channel.value_group
        text = parsed.match.group(group)
        if text is None or not text.strip():
            return make(None, FAULT, f"group {group!r} is empty in this line")
        try:
            number = float(text.strip())
        except ValueError:
            return make(None, FAULT, f"group {group!r}: {text!r} is not a number")
        value = number * channel.scale + channel.offset
        if not math.isfinite(value):
            return make(None, FAULT, f"group {group!r}: {text!r} is not a finite number")
        status_group = self._status_group(channel)
        if status_group is None:
            return make(value, MEASURING)
        status_text = parsed.match.group(status_group)
        mapping = self.config.status.map if self.config.status is not None else _DEFAULT_MAP
        code = mapping.get(status_text) if status_text is not None else None
        if code is None:
            return make(
                value, FAULT, f"status {status_text!r} (group {status_group!r}) is not in the map"
            )
        return make(value, code)


def _drain(fd: int) -> None:
    """Discard input that is already waiting (a late answer, a streaming instrument's backlog)."""
    dropped = 0
    while dropped < _DRAIN_BYTES and select.select([fd], [], [], 0)[0]:
        chunk = os.read(fd, 4096)
        if not chunk:
            raise _PortGone("the port hung up")
        dropped += len(chunk)


def _open_failure(exc: serial.SerialException) -> str:
    """Why a port did not open, and what to check."""
    code = exc.errno if isinstance(exc.errno, int) else None
    if code == errno.ENOENT:
        return (
            "cannot open the port: no such device — check that the USB adapter is plugged in "
            "and the port path"
        )
    if code == errno.EACCES:
        return (
            "cannot open the port: permission denied — add the agent's user to the group that "
            "owns the port (usually dialout)"
        )
    if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK) or "lock" in str(exc).lower():
        return "cannot open the port: it is in use by another program — stop that program"
    reason = exc.strerror if isinstance(exc.strerror, str) else str(exc)
    return f"cannot open the port ({reason}) — check the port path and the USB adapter"
