"""A simulated HJ 212-2017 datalogger: sends real-time (2011), minute (2051) and hourly (2061)
data for configured pollutants, waits for the agent's answers and re-sends what is not answered.

Transports: ``--connect HOST:PORT`` (the datalogger dials the agent, the usual set-up),
``--listen PORT`` (the agent dials it), ``--link PATH`` (a pseudo-terminal: PATH is a symlink
to its slave side, give it to the agent as ``serial_port``).

It answers the agent's commands as a datalogger does: 1011 read time (9011, 1011 with
SystemTime, 9012), 1012 set time (9011, clock set, 9012), 2011 start real-time (9011, 9012).

Faults, at start (``--fault NAME``, repeatable) or at run time (type into stdin): ``fault NAME``
applies to the next data packet; ``flag CODE LETTER`` switches a pollutant's flag (N, C, M, D,
...); ``help``. Faults: garbage (noise before the packet), bad-crc, truncated (half a packet,
then the whole one), split (the packet in 3 writes), merged (with the next in one write),
wrong-length, oversize, duplicate (sent twice), wrong-password, unknown-mn, no-flag.

Every data packet it sends is recorded (``sent``: QN, CN, time, values and flags); ``answered``
holds the QNs the agent answered with 9014. ``--record FILE`` writes both as JSON at exit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import signal
import socket
import sys
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from simulators.hj212_wire import FAULTS, Reader, fields, packet, spoil

DEFAULT_POLLUTANTS = {"a21026": 35.0, "a21002": 60.0, "a34013": 8.0, "a01012": 120.0}


@dataclass
class Sent:
    """A data packet as sent: what the agent must store if it answers it."""

    qn: str
    cn: str
    time: str  # DataTime as sent (local time)
    values: dict[str, tuple[float, str]]  # code -> (value, flag); Rtd for 2011, Avg otherwise
    segment: str = field(repr=False)
    tries: int = 1
    last_sent: float = 0.0


class Datalogger:
    """The simulated datalogger; ``start(transport)`` / ``stop()``."""

    def __init__(
        self,
        mn: str,
        password: str,
        pollutants: dict[str, float] | None = None,
        *,
        st: str = "22",
        timezone: str = "Asia/Ho_Chi_Minh",
        interval_s: float = 1.0,
        time_step_s: float | None = None,
        start_time: datetime | None = None,
        count: int | None = None,
        minute_every: int = 0,
        hour_every: int = 0,
        resend_after_s: float = 3.0,
        resend_on_reconnect: int = 0,
        faults: list[str] | None = None,
    ) -> None:
        self.mn, self.password, self.st = mn, password, st
        self.pollutants = dict(pollutants or DEFAULT_POLLUTANTS)
        self.flags = dict.fromkeys(self.pollutants, "N")
        self.zone = ZoneInfo(timezone)
        self.interval_s, self.time_step_s = interval_s, time_step_s
        self.next_time = (start_time or datetime.now(self.zone)).astimezone(self.zone)
        self.count, self.minute_every, self.hour_every = count, minute_every, hour_every
        self.resend_after_s, self.resend_on_reconnect = resend_after_s, resend_on_reconnect
        self.faults: list[str] = list(faults or [])
        self.clock_offset_s = 0.0  # what the agent's 1012 set, against our wall clock
        self.sent: list[Sent] = []
        self.answered: set[str] = set()
        self.waiting: dict[str, Sent] = {}
        self.commands: list[str] = []  # CNs of the agent's commands, in order
        self.connections = 0
        self._held = b""  # a "merged" packet waiting for the next
        self._seq = 0
        self._last_qn = 0
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._conn: Callable[[bytes], None] | None = None
        self._threads: list[threading.Thread] = []
        self._closing: list[socket.socket] = []  # a listening socket, closed by stop()

    # --- the packets ---------------------------------------------------------------------------
    def _qn(self) -> str:
        """A request id as dataloggers make it (local time to the millisecond), never reused."""
        self._seq += 1
        now = datetime.now(self.zone)
        qn = int(f"{now:%Y%m%d%H%M%S}{now.microsecond // 1000:03d}")
        self._last_qn = max(qn, self._last_qn + 1)
        return str(self._last_qn)

    def _data_segment(self, cn: str, when: datetime) -> Sent:
        field_name = "Rtd" if cn == "2011" else "Avg"
        values = {}
        parts = []
        for i, (code, base) in enumerate(self.pollutants.items()):
            value = round(base * (1 + 0.1 * math.sin(self._seq / 7 + i)) + random.random(), 3)
            flag = self.flags[code]
            values[code] = (value, flag)
            extra = (
                f",{code}-Min={value - 1:.3f},{code}-Max={value + 1:.3f}" if cn != "2011" else ""
            )
            parts.append(f"{code}-{field_name}={value}{extra},{code}-Flag={flag}")
        qn = self._qn()
        data_time = f"{when:%Y%m%d%H%M%S}"
        segment = (
            f"QN={qn};ST={self.st};CN={cn};PW={self.password};MN={self.mn};Flag=5;"
            f"CP=&&DataTime={data_time};{';'.join(parts)}&&"
        )
        return Sent(qn, cn, data_time, values, segment)

    def send_data(self, cn: str = "2011") -> Sent:
        """Send one data packet now (with the next queued fault)."""
        with self._lock:
            when = self.next_time
            if self.time_step_s is not None:
                self.next_time += timedelta(seconds=self.time_step_s)
            else:
                when = datetime.now(self.zone) + timedelta(seconds=self.clock_offset_s)
            sent = self._data_segment(cn, when)
            fault = self.faults.pop(0) if self.faults else None
            if fault == "merged":
                self._held += packet(sent.segment)
                writes: list[bytes] = []
            else:
                writes = spoil(fault, sent.segment, self.password, self.mn)
                if self._held:
                    writes = [self._held + writes[0], *writes[1:]]
                    self._held = b""
            self.sent.append(sent)
            if fault != "no-flag":
                sent.last_sent = time.monotonic()
                self.waiting[sent.qn] = sent
            for data in writes:
                self._write(data)
            return sent

    def _write(self, data: bytes) -> None:
        if self._conn is None:
            return  # not connected: the re-send loop sends it later
        try:
            self._conn(data)
        except OSError:
            self._conn = None

    # --- the agent's answers and commands ------------------------------------------------------
    def on_segment(self, segment: str) -> None:
        f = fields(segment)
        cn, qn = f.get("CN"), f.get("QN", "")
        with self._lock:
            if cn == "9014":
                self.answered.add(qn)
                self.waiting.pop(qn, None)
                return
            self.commands.append(cn or "?")
            reply = f"ST=91;PW={self.password};MN={self.mn}"
            self._write(packet(f"QN={qn};{reply};CN=9011;Flag=4;CP=&&QnRtn=1&&"))
            if cn == "1011":
                now = datetime.now(self.zone) + timedelta(seconds=self.clock_offset_s)
                self._write(
                    packet(
                        f"QN={qn};ST={self.st};CN=1011;PW={self.password};MN={self.mn};Flag=4;"
                        f"CP=&&SystemTime={now:%Y%m%d%H%M%S}&&"
                    )
                )
            elif cn == "1012":
                t = datetime.strptime(f["SystemTime"], "%Y%m%d%H%M%S").replace(tzinfo=self.zone)
                self.clock_offset_s = t.timestamp() - time.time()
            self._write(packet(f"QN={qn};{reply};CN=9012;Flag=4;CP=&&ExeRtn=1&&"))

    def _reconnected(self) -> None:
        """A new connection: send again what waits for an answer, and (a datalogger that
        re-sends its recent history) the last ``resend_on_reconnect`` answered packets."""
        self.connections += 1
        with self._lock:
            again = []
            if self.connections > 1 and self.resend_on_reconnect:
                answered = [s for s in self.sent if s.qn in self.answered]
                again = answered[-self.resend_on_reconnect :]
            for sent in [*again, *self.waiting.values()]:
                sent.tries += 1
                sent.last_sent = time.monotonic()
                self._write(packet(sent.segment))

    def _tick(self) -> None:
        """Re-send what the agent has not answered in time (same QN)."""
        with self._lock:
            now = time.monotonic()
            for sent in list(self.waiting.values()):
                if now - sent.last_sent >= self.resend_after_s:
                    sent.tries += 1
                    sent.last_sent = now
                    self._write(packet(sent.segment))

    # --- transports ----------------------------------------------------------------------------
    def _serve(self, read: Callable[[], bytes | None], write: Callable[[bytes], None]) -> None:
        reader = Reader()
        self._conn = write
        self._reconnected()
        while not self._stop.is_set() and self._conn is not None:
            data = read()
            if data is None:
                break
            for segment in reader.feed(data):
                self.on_segment(segment)
        self._conn = None

    def _sender(self) -> None:
        sent = 0
        while not self._stop.wait(self.interval_s):
            if self.count is not None and sent >= self.count:
                self._tick()
                continue
            sent += 1
            self.send_data("2011")
            if self.minute_every and sent % self.minute_every == 0:
                self.send_data("2051")
            if self.hour_every and sent % self.hour_every == 0:
                self.send_data("2061")
            self._tick()

    def start(self, connect: str | None = None, listen: int | None = None, link: str | None = None):
        """Start in the background: dial ``connect`` (HOST:PORT), listen, or serve a pty."""
        if connect:
            host, _, port = connect.rpartition(":")

            def dial() -> socket.socket | None:
                try:
                    return socket.create_connection((host, int(port)), timeout=2)
                except OSError:
                    return None

            target: Callable[[], None] = lambda: _socket_loop(self, dial)  # noqa: E731
        elif listen is not None:
            server = socket.create_server(("127.0.0.1", listen))
            self._closing.append(server)
            server.settimeout(0.2)
            self.port = server.getsockname()[1]

            def accept() -> socket.socket | None:
                try:
                    return server.accept()[0]
                except (TimeoutError, OSError):
                    return None

            target = lambda: _socket_loop(self, accept)  # noqa: E731
        elif link:
            target = lambda: _pty_loop(self, Path(link))  # noqa: E731
        else:
            raise ValueError("give connect, listen or link")
        for fn in (target, self._sender):
            thread = threading.Thread(target=fn, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        for sock in self._closing:
            sock.close()

    def record(self) -> dict:
        """What was sent and answered, as JSON-ready data."""
        with self._lock:
            return {
                "sent": [
                    {"qn": s.qn, "cn": s.cn, "time": s.time, "values": s.values, "tries": s.tries}
                    for s in self.sent
                ],
                "answered": sorted(self.answered),
                "commands": self.commands,
            }

    def command(self, line: str) -> str:
        """A run-time command from stdin; returns what to print."""
        words = line.split()
        if words[:1] == ["fault"] and len(words) == 2 and words[1] in FAULTS:
            self.faults.append(words[1])
            return f"next packet: {words[1]}"
        if words[:1] == ["flag"] and len(words) == 3 and words[1] in self.flags:
            self.flags[words[1]] = words[2]
            return f"{words[1]} flag {words[2]}"
        return "commands: fault NAME (" + ", ".join(FAULTS) + "), flag CODE LETTER, help"


def _socket_loop(logger: Datalogger, make: Callable[[], socket.socket | None]) -> None:
    """Serve connections one after the other (dialled or accepted) until the logger stops."""
    while not logger._stop.is_set():
        sock = make()
        if sock is None:
            logger._stop.wait(0.2)
            continue
        sock.settimeout(0.2)

        def read(sock: socket.socket = sock) -> bytes | None:
            try:
                return sock.recv(65536) or None
            except TimeoutError:
                return b""
            except OSError:
                return None

        with contextlib.closing(sock):
            logger._serve(read, sock.sendall)


def _pty_loop(logger: Datalogger, link: Path) -> None:
    """Serve a pseudo-terminal whose slave side ``link`` points to."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    link.symlink_to(os.ttyname(slave))
    os.set_blocking(master, False)

    def read() -> bytes | None:
        import select

        ready, _, _ = select.select([master], [], [], 0.2)
        if not ready:
            return b""
        try:
            return os.read(master, 65536)
        except OSError:
            return b""  # no reader on the slave side yet

    try:
        logger._serve(read, lambda data: os.write(master, data) and None)
    finally:
        link.unlink(missing_ok=True)
        os.close(master)
        os.close(slave)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m simulators.hj212", description=__doc__.split("\n")[0]
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--connect", help="HOST:PORT of the agent's HJ 212 server")
    where.add_argument("--listen", type=int, help="port to listen on (the agent connects)")
    where.add_argument("--link", help="pty symlink, e.g. /tmp/ttyHJ0 (serial)")
    p.add_argument("--mn", default="88888880000001")
    p.add_argument("--password", default="123456")
    p.add_argument(
        "--pollutants",
        default=",".join(f"{c}:{v}" for c, v in DEFAULT_POLLUTANTS.items()),
        help="CODE:BASE,... e.g. a21026:35,a34013:8",
    )
    p.add_argument("--interval", type=float, default=60.0, help="seconds between 2011 packets")
    p.add_argument("--minute-every", type=int, default=0, help="a 2051 packet every N")
    p.add_argument("--hour-every", type=int, default=0, help="a 2061 packet every N")
    p.add_argument("--timezone", default="Asia/Ho_Chi_Minh")
    p.add_argument("--fault", action="append", default=[], choices=FAULTS)
    p.add_argument("--record", help="write what was sent and answered (JSON) at exit")
    args = p.parse_args(argv)
    pollutants = {c: float(v) for c, v in (item.split(":") for item in args.pollutants.split(","))}
    logger = Datalogger(
        args.mn,
        args.password,
        pollutants,
        timezone=args.timezone,
        interval_s=args.interval,
        minute_every=args.minute_every,
        hour_every=args.hour_every,
        faults=args.fault,
    )
    logger.start(args.connect, args.listen, args.link)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    print(f"datalogger MN {args.mn} running; type 'help'", flush=True)
    try:
        for line in sys.stdin:
            if line.strip():
                print(logger.command(line), flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        logger.stop()
        if args.record:
            Path(args.record).write_text(json.dumps(logger.record(), indent=1))
        unanswered = len(logger.waiting)
        print(f"sent {len(logger.sent)}, answered {len(logger.answered)}, waiting {unanswered}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
