"""A serial ASCII sensor on a pseudo-terminal: answers a request with one line of text.

The simulator holds the master side of a pty pair (``os.openpty``) and points a stable symlink
(``--link``, default ``/tmp/ttySIM0``) at the slave side; configure the agent's ``port`` with
the symlink. Default preset: a dust sensor answering ``READ\\r\\n`` with
``PM10=012.3,PM2.5=008.1,ST=0*5A\\r\\n`` (xor8 of the text before ``*``), values drifting slowly.

A description (TOML, ``--description FILE``, or a dict in tests) replaces the preset::

    request     what the sensor answers to, escapes allowed; omit: send a line every interval_s
    terminator  line end, escapes allowed                            (default "\\r\\n")
    lines       line templates, used in turn, e.g. "T={T:05.1f};ST={ST}"      (required)
    values      name -> number | text | {base, amplitude, period_s}  (sine over time)
    checksum    "none", "sum8" or "xor8": appended as checksum_prefix + two hex digits
    checksum_prefix                                                  (default "*")
    encoding    (default "ascii");  interval_s (default 1.0)
    fault, delay_s   as the options below

Faults, at start (options) and at run time (one command per line into the control FIFO
``<link>.ctl``, e.g. ``echo 'fault garbage' > /tmp/ttySIM0.ctl``)::

    fault none|no-answer|garbage|partial|bad-checksum
    delay S        answer S seconds late
    vanish         remove the port (symlink and pty) as an unplugged USB adapter would
    return         bring it back (a new pty behind the same symlink)
    set NAME TEXT  fix a value, e.g. "set ST C" (a status letter) or "set PM10 99.5"

Run it: ``python -m simulators.ascii_sensor --link /tmp/ttySIM0`` until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import select
import signal
import sys
import threading
import time
import tomllib
import tty
from functools import reduce
from pathlib import Path
from typing import Any

from drivers.serial_line.config import decode_escapes

FAULTS = ("none", "no-answer", "garbage", "partial", "bad-checksum")
GARBAGE = b"\x8f\xfe#@!\x00\xc3~"

DUST_SENSOR: dict[str, Any] = {
    "request": "READ\r\n",
    "lines": ["PM10={PM10:05.1f},PM2.5={PM25:05.1f},ST={ST}"],
    "values": {
        "PM10": {"base": 12.3, "amplitude": 3.0, "period_s": 120.0},
        "PM25": {"base": 8.1, "amplitude": 2.0, "period_s": 90.0},
        "ST": "0",
    },
    "checksum": "xor8",
}


def _checksum(kind: str, data: bytes) -> int:
    if kind == "sum8":
        return sum(data) % 256
    return reduce(lambda a, b: a ^ b, data, 0)


class AsciiSensorSimulator:
    """The sensor; ``start()``/``stop()`` or use it in a ``with``. Faults are plain attributes."""

    def __init__(
        self, link: str | Path, description: dict[str, Any] | None = None, *, control: bool = True
    ) -> None:
        desc = DUST_SENSOR if description is None else description
        unknown = set(desc) - {
            "request", "terminator", "lines", "values", "checksum", "checksum_prefix",
            "encoding", "interval_s", "fault", "delay_s",
        }  # fmt: skip
        if unknown:
            raise ValueError(
                f"unknown keys in the sensor description: {', '.join(sorted(unknown))}"
            )
        self.link = Path(link)
        self.encoding: str = desc.get("encoding", "ascii")
        request = desc.get("request")
        self.request = decode_escapes(request, self.encoding) if request else None
        self.terminator = decode_escapes(desc.get("terminator", "\r\n"), self.encoding)
        self.lines: list[str] = list(desc.get("lines", []))
        if not self.lines:
            raise ValueError("the sensor description needs lines = [...] (line templates)")
        self.values: dict[str, Any] = dict(desc.get("values", {}))
        self.checksum: str = desc.get("checksum", "none")
        self.checksum_prefix: str = desc.get("checksum_prefix", "*")
        self.interval_s = float(desc.get("interval_s", 1.0))
        self.fault: str = desc.get("fault", "none")
        self.delay_s = float(desc.get("delay_s", 0.0))
        if self.fault not in FAULTS:
            raise ValueError(f"fault must be one of {', '.join(FAULTS)}, got {self.fault!r}")
        self.control = Path(f"{self.link}.ctl") if control else None
        for template in self.lines:
            try:
                template.format_map({k: _value_at(v, 0.0) for k, v in self.values.items()})
            except (KeyError, ValueError, IndexError) as exc:
                raise ValueError(
                    f"line template {template!r} does not fit the values: {exc}"
                ) from None
        self.requests = 0  # requests recognised, answered or not
        self.sent: list[bytes] = []  # every answer written, in order (tests inspect it)
        self._master: int | None = None
        self._slave: int | None = None
        self._turn = 0
        self._started = time.monotonic()
        self._pending: list[tuple[float, bytes]] = []  # late answers: (due, bytes)
        self._lock = threading.Lock()
        self._wake_r: int | None
        self._wake_w: int | None
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._control_fd: int | None = None

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> AsciiSensorSimulator:
        self._open_pty()
        if self.control is not None:
            with contextlib.suppress(FileNotFoundError):
                self.control.unlink()
            os.mkfifo(self.control)
            # O_RDWR keeps the FIFO open when a writer (echo ... >) closes it.
            self._control_fd = os.open(self.control, os.O_RDWR | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name="ascii-sensor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            self._close_pty()
        for fd in (self._control_fd, self._wake_r, self._wake_w):
            if fd is not None:
                os.close(fd)
        self._control_fd = self._wake_r = self._wake_w = None
        if self.control is not None:
            with contextlib.suppress(FileNotFoundError):
                self.control.unlink()

    def __enter__(self) -> AsciiSensorSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pty(self) -> str | None:
        """The slave device the symlink points to, or None while vanished."""
        return os.ttyname(self._slave) if self._slave is not None else None

    def vanish(self) -> None:
        """Remove the port as an unplugged USB adapter would: symlink gone, open ends hung up."""
        with self._lock:
            self._close_pty()
        self._wake()

    def reappear(self) -> None:
        """Bring the port back: a new pty behind the same symlink."""
        with self._lock:
            if self._master is None:
                self._open_pty()
        self._wake()

    def _wake(self) -> None:
        if self._wake_w is not None:  # None: stopped already
            os.write(self._wake_w, b"x")

    def command(self, text: str) -> str:
        """Apply one control command (see the module docstring); returns what was done."""
        words = text.split()
        if not words:
            return ""
        verb, args = words[0], words[1:]
        if verb == "fault" and len(args) == 1 and args[0] in FAULTS:
            self.fault = args[0]
        elif verb == "delay" and len(args) == 1:
            self.delay_s = float(args[0])
        elif verb == "vanish" and not args:
            self.vanish()
        elif verb == "return" and not args:
            self.reappear()
        elif verb == "set" and len(args) == 2:
            self.values[args[0]] = _number_or_text(args[1])
        else:
            return f"unknown command {text.strip()!r}"
        return f"done: {text.strip()}"

    # -- the line ---------------------------------------------------------------------------

    def line(self) -> bytes:
        """The next answer line as the healthy sensor sends it, terminator included."""
        template = self.lines[self._turn % len(self.lines)]
        self._turn += 1
        now = time.monotonic() - self._started
        body = template.format_map({k: _value_at(v, now) for k, v in self.values.items()})
        data = body.encode(self.encoding)
        if self.checksum != "none":
            data += f"{self.checksum_prefix}{_checksum(self.checksum, data):02X}".encode()
        return data + self.terminator

    def _answer(self) -> bytes | None:
        """What the sensor sends for one request under the current fault, or None."""
        fault = self.fault
        if fault == "no-answer":
            return None
        if fault == "garbage":
            return GARBAGE + self.terminator
        line = self.line()
        if fault == "partial":
            return line[: max(1, (len(line) - len(self.terminator)) // 2)]
        if fault == "bad-checksum" and self.checksum != "none":
            body = line[: -len(self.terminator) - 2]
            good = int(line[-len(self.terminator) - 2 : -len(self.terminator)], 16)
            return body + f"{(good + 1) % 256:02X}".encode() + self.terminator
        return line

    # -- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        received = bytearray()
        next_line = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                master = self._master
                due = [data for when, data in self._pending if when <= now]
                self._pending = [(w, d) for w, d in self._pending if w > now]
            for data in due:
                self._send(data)
            if self.request is None and master is not None and now >= next_line:
                next_line = now + self.interval_s
                self._respond()
            waits = [next_line - now] if self.request is None else [0.5]
            waits += [w - now for w, _ in self._pending]
            fds = [self._wake_r] + [fd for fd in (master, self._control_fd) if fd is not None]
            try:
                ready, _, _ = select.select(fds, [], [], max(0.0, min(waits)))
            except (OSError, ValueError):
                continue  # the pty vanished while we waited on it
            if self._wake_r in ready:
                os.read(self._wake_r, 64)
            if self._control_fd is not None and self._control_fd in ready:
                self._read_control()
            if master is not None and master in ready:
                try:
                    received += os.read(master, 4096)
                except OSError:
                    continue  # vanished meanwhile
                received = self._take_requests(received)

    def _take_requests(self, received: bytearray) -> bytearray:
        if self.request is None:
            return bytearray()  # a streaming sensor ignores what it is sent
        while (end := received.find(self.request)) >= 0:
            del received[: end + len(self.request)]
            self.requests += 1
            self._respond()
        return received[-len(self.request) :] if len(received) > 4096 else received

    def _respond(self) -> None:
        answer = self._answer()
        if answer is None:
            return
        if self.delay_s > 0:
            with self._lock:
                self._pending.append((time.monotonic() + self.delay_s, answer))
            return
        self._send(answer)

    def _send(self, data: bytes) -> None:
        with self._lock:
            if self._master is None:
                return
            try:
                os.write(self._master, data)
            except OSError:
                return  # nobody reads and the pty is full, or vanished: the line is lost
            self.sent.append(data)

    def _read_control(self) -> None:
        try:
            data = os.read(self._control_fd, 4096)  # type: ignore[arg-type]
        except BlockingIOError:
            return
        for text in data.decode(errors="replace").splitlines():
            if text.strip():
                print(f"ascii sensor: {self.command(text)}", flush=True)

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR/LF translation before the driver sets its mode
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        temporary = self.link.with_name(self.link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        os.symlink(os.ttyname(slave), temporary)
        os.replace(temporary, self.link)

    def _close_pty(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        self._pending.clear()


def _value_at(spec: Any, elapsed: float) -> Any:
    if isinstance(spec, dict):
        base = float(spec.get("base", 0.0))
        amplitude = float(spec.get("amplitude", 0.0))
        period = float(spec.get("period_s", 60.0))
        return base + amplitude * math.sin(2 * math.pi * elapsed / period)
    return spec


def _number_or_text(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.ascii_sensor",
        description="Serve a serial ASCII sensor on a pseudo-terminal until SIGINT or SIGTERM. "
        "Run-time faults: write commands into LINK.ctl (fault NAME, delay S, vanish, return, "
        "set NAME VALUE).",
    )
    parser.add_argument(
        "--link", default="/tmp/ttySIM0", help="symlink to the pty (default /tmp/ttySIM0)"
    )
    parser.add_argument(
        "--description", type=Path, metavar="FILE", help="TOML sensor description (see module)"
    )
    parser.add_argument("--fault", choices=FAULTS, default=None, help="fault from the start")
    parser.add_argument("--delay", type=float, default=None, metavar="S", help="answer S s late")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the sensor simulator until SIGINT or SIGTERM."""
    args = _parser().parse_args(argv)
    description: dict[str, Any] = dict(DUST_SENSOR)
    if args.description is not None:
        try:
            description = tomllib.loads(args.description.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            print(f"ascii sensor: cannot read {args.description}: {exc}", file=sys.stderr)
            return 2
    if args.fault is not None:
        description["fault"] = args.fault
    if args.delay is not None:
        description["delay_s"] = args.delay
    try:
        simulator = AsciiSensorSimulator(args.link, description)
        simulator.start()
    except (ValueError, OSError) as exc:
        print(f"ascii sensor: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    request = repr(simulator.request)[1:] if simulator.request else "(none: streams lines)"
    print(
        f"ascii sensor on {simulator.link} -> {simulator.pty}; request {request}; "
        f"control: echo 'fault garbage' > {simulator.control}",
        flush=True,
    )
    while not stop.wait(0.5):
        pass
    simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
