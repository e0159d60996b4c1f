"""One datalogger's side of the conversation: packets in, readings delivered, answers out.

An answer (CN 9014) is sent only after ``deliver`` returned, i.e. once the readings are
committed: a datalogger that got its answer may forget the data. A packet re-sent after a lost
answer (same QN, CN, PNO and CP) is answered again but not delivered twice. The agent reads the
datalogger's clock (CN 1011) on connect and every ``time_sync_interval_s`` and sets it
(CN 1012) when it is off by more than ``max_clock_drift_s``, or when the datalogger asks
(CN 1013). Every fault is counted in ``counts`` by reason and logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from core.log_limit import LogLimiter
from core.reading import Reading
from drivers.hj212.config import Hj212Config
from drivers.hj212.framing import Frame, FrameFault, encode, show
from drivers.hj212.packet import FLAG_ANSWER, FLAG_V2017, Packet, PacketError, build_segment
from drivers.hj212.readings import DATA_COMMANDS, ReadingMaker, Reassembly, data_time_ms

log = logging.getLogger("drivers.hj212")
_REMEMBERED = 4096  # answered packets remembered to spot re-sends
_RECENT = 20  # packets kept for probe
# what a peer can make us log (garbage, refused packets, connections): per event and reason,
# 10 lines a minute, the next one saying how many were held back (the counts are in ``counts``)
OUTSIDER_LINES = LogLimiter(60.0, burst=10)

PACKET_FAULTS = {
    "bad_packet": "framed right, but not a readable data segment",
    "bad_data": "a data packet whose DataTime or PNUM/PNO is wrong (not stored, not answered)",
    "unknown_mn": "an MN no configured device has",
    "wrong_password": "PW differs from the device's password (not stored, not answered)",
    "duplicate": "a packet already stored, sent again (answered again, not stored again)",
    "incomplete_message": "a split message given up before all its parts came",
    "not_stored": "the agent could not store the readings (not answered)",
    "send_failed": "an answer or command could not be written to the link",
}


def event(level: int, name: str, **fields: object) -> None:
    """One structured log event (the agent's key=value formatter prints ``fields``)."""
    if log.isEnabledFor(level):
        log.log(level, name, extra={"fields": fields})


def outsider_event(level: int, name: str, key: str, **fields: object) -> None:
    """An event a peer can cause at will: within ``OUTSIDER_LINES`` for ``name`` and ``key``
    (a device or reason, never a peer address), with ``suppressed=N`` after a pause."""
    allowed, held = OUTSIDER_LINES.allow(f"{name}:{key}")
    if allowed:
        event(level, name, **fields, **({"suppressed": held} if held else {}))


class Link(Protocol):
    """Where a datalogger's packets came from and answers go (a connection, a serial port)."""

    peer: str

    def send(self, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class Seen:
    """A packet as ``probe`` shows it."""

    at_ms: int
    peer: str
    raw: str
    crc: str
    outcome: str
    reply: str | None


def _resend_key(packet: Packet) -> tuple[str, str, int | None, int]:
    """What makes a packet the same packet sent again: QN, CN, PNO and the same CP content
    (a datalogger reusing a QN for other data is not taken for a re-send)."""
    return (packet.qn or "", packet.cn, packet.pno, hash(packet.cp))


class Session:
    """The protocol state of one configured datalogger; thread-safe."""

    def __init__(
        self, config: Hj212Config, device: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.config, self.device, self.clock = config, device, clock
        self.maker = ReadingMaker(config, device)
        self.reassembly = Reassembly()
        self.counts: Counter[str] = Counter()
        self.recent: deque[Seen] = deque(maxlen=_RECENT)
        self.deliver: Callable[[list[Reading]], None] | None = None
        self.link: Link | None = None
        self.stored = 0
        self.stored_means = "stored"  # what happened to delivered readings (probe: decoded)
        self.answers = 0
        self.clock_offset_s: float | None = None
        self._answered: OrderedDict[tuple[str, str, int | None, int], None] = OrderedDict()
        self._commands: OrderedDict[str, str] = OrderedDict()  # QN -> CN we sent
        self._st = "91"
        self._next_sync = 0.0
        self._lock = threading.RLock()

    # --- what links call ---------------------------------------------------------------------
    def on_fault(self, fault: FrameFault, peer: str) -> None:
        """A framing fault on a link this datalogger uses."""
        self.counts[fault.reason] += 1
        outsider_event(
            logging.WARNING,
            "hj212_frame_fault",
            f"{self.device}:{fault.reason}",
            device=self.device,
            peer=peer,
            reason=fault.reason,
            detail=fault.detail,
            raw=show(fault.raw),
        )

    def on_packet_fault(self, reason: str, detail: str, frame: Frame, peer: str) -> None:
        self.counts[reason] += 1
        outsider_event(
            logging.WARNING,
            "hj212_packet_refused",
            f"{self.device}:{reason}",
            device=self.device,
            peer=peer,
            reason=reason,
            detail=detail,
            raw=show(frame.raw),
        )
        self._seen(frame, peer, f"{reason}: {detail}", None)

    def on_packet(self, frame: Frame, packet: Packet, link: Link) -> None:
        """A packet whose MN is this datalogger's."""
        with self._lock:
            if packet.pw != self.config.password:
                self.on_packet_fault("wrong_password", "PW does not match", frame, link.peer)
                return
            if self.link is not link:
                self.on_link(link)
            self._st = packet.st or self._st
            if packet.cn in ("9011", "9012", "9013", "9014"):
                self._on_answer(frame, packet, link.peer)
            elif packet.cn == "1011":
                self._on_clock(frame, packet, link.peer)
            elif packet.cn == "1013":
                reply = self.set_clock()
                self._seen(frame, link.peer, "asks for the time", reply)
            else:
                self._on_data(frame, packet, link.peer)
            self.tick()

    def on_link(self, link: Link) -> None:
        """A new connection (or port) to this datalogger: answers and commands go there now."""
        with self._lock:
            self.link = link
            self._next_sync = self.clock()  # a new connection: check the clock now
            if self.config.request_realtime:
                self.command("2011", "")

    def tick(self) -> None:
        """Periodic duties (reading the datalogger's clock); links call it between reads."""
        interval = self.config.time_sync_interval_s
        if not interval or self.link is None or self.clock() < self._next_sync:
            return
        with self._lock:
            self._next_sync = self.clock() + interval
            self.command("1011", "")

    # --- commands to the datalogger ----------------------------------------------------------
    def command(self, cn: str, cp: str) -> str | None:
        """Send a command (Flag asks for an answer); returns its segment, None if not sent."""
        qn = self._qn()
        self._commands[qn] = cn
        while len(self._commands) > 64:
            self._commands.popitem(last=False)
        segment = build_segment(
            qn=qn,
            st=self._st,
            cn=cn,
            pw=self.config.password,
            mn=self.config.mn,
            flag=FLAG_V2017 | FLAG_ANSWER,
            cp=cp,
        )
        return segment if self._send(segment) else None

    def set_clock(self) -> str | None:
        """Set the datalogger's clock to ours (CN 1012), in its time zone."""
        local = datetime.fromtimestamp(self.clock(), UTC).astimezone(self.maker.zone)
        self.counts["clock_set"] += 1
        return self.command("1012", f"SystemTime={local:%Y%m%d%H%M%S}")

    # --- internals ---------------------------------------------------------------------------
    def _send(self, segment: str) -> bool:
        link = self.link
        if link is None:
            return False
        try:
            link.send(encode(segment))
        except OSError as exc:
            self.counts["send_failed"] += 1
            outsider_event(
                logging.WARNING, "hj212_send_failed", self.device, device=self.device,
                error=str(exc),
            )  # fmt: skip
            return False
        return True

    def _qn(self) -> str:
        now = datetime.fromtimestamp(self.clock(), UTC).astimezone(self.maker.zone)
        return f"{now:%Y%m%d%H%M%S}{now.microsecond // 1000:03d}"

    def _answer(self, packet: Packet) -> str | None:
        if not (packet.wants_answer and self.config.answer):
            return None
        segment = build_segment(
            qn=packet.qn,
            st="91",
            cn="9014",
            pw=self.config.password,
            mn=self.config.mn,
            flag=FLAG_V2017,
        )
        if self._send(segment):
            self.answers += 1
            return segment
        return None

    def _on_data(self, frame: Frame, packet: Packet, peer: str) -> None:
        key = _resend_key(packet) if packet.qn else None
        if key is not None and key in self._answered:
            self.counts["duplicate"] += 1
            outsider_event(
                logging.INFO, "hj212_duplicate", self.device, device=self.device, qn=packet.qn,
                cn=packet.cn,
            )  # fmt: skip
            self._seen(frame, peer, "duplicate (stored before)", self._answer(packet))
            return
        try:
            ready, dropped = self.reassembly.add(packet)
            if dropped:
                self.counts["incomplete_message"] += 1
                outsider_event(
                    logging.WARNING, "hj212_message_dropped", self.device, device=self.device,
                    detail=dropped,
                )  # fmt: skip
            if not ready:
                self._seen(
                    frame, peer, f"part {packet.pno} of {packet.pnum}: waits for DataTime", None
                )
                return
            readings = [r for part, cp in ready for r in self.maker.readings(part, cp)]
        except PacketError as exc:
            self.on_packet_fault("bad_data", str(exc), frame, peer)
            return
        if readings:
            try:
                if self.deliver is None:
                    raise RuntimeError("the driver is not started")
                self.deliver(readings)  # returns once committed
            except Exception as exc:  # the agent could not store: no answer, the logger resends
                self.on_packet_fault("not_stored", str(exc), frame, peer)
                return
            self.stored += len(readings)
        for part, _ in ready:
            if part.qn:
                self._answered[_resend_key(part)] = None
        while len(self._answered) > _REMEMBERED:
            self._answered.popitem(last=False)
        outcome = f"{len(readings)} reading(s) {self.stored_means}"
        if packet.cn not in DATA_COMMANDS:
            outcome = "noted"
        self._seen(frame, peer, outcome, self._answer(packet))

    def _on_answer(self, frame: Frame, packet: Packet, peer: str) -> None:
        asked = self._commands.get(packet.qn or "")
        cp = packet.cp
        outcome = f"answer to CN {asked}: {cp}" if asked else f"answer to an unknown QN: {cp}"
        level = logging.INFO if asked else logging.WARNING
        outsider_event(
            level, "hj212_answer", f"{self.device}:{bool(asked)}", device=self.device,
            cn=packet.cn, qn=packet.qn, cp=cp[:200],
        )  # fmt: skip
        if packet.cn == "9012" and asked:
            self._commands.pop(packet.qn or "", None)
        self._seen(frame, peer, outcome, None)

    def _on_clock(self, frame: Frame, packet: Packet, peer: str) -> None:
        text = dict(p.split("=", 1) for p in packet.cp.split(";") if "=" in p).get("SystemTime")
        try:
            theirs = data_time_ms(text, self.maker.zone) / 1000
        except PacketError as exc:
            self.on_packet_fault("bad_packet", f"CN 1011 SystemTime: {exc}", frame, peer)
            return
        self.clock_offset_s = theirs - self.clock()
        reply = None
        if abs(self.clock_offset_s) > self.config.max_clock_drift_s:
            outsider_event(
                logging.WARNING,
                "hj212_clock_off",
                self.device,
                device=self.device,
                offset_s=round(self.clock_offset_s, 1),
            )
            reply = self.set_clock()
        self._seen(frame, peer, f"clock off by {self.clock_offset_s:+.1f} s", reply)
        # the datalogger may want an answer to its upload too
        if packet.wants_answer and self.config.answer:
            self._answer(packet)

    def _seen(self, frame: Frame, peer: str, outcome: str, reply: str | None) -> None:
        raw = frame.raw.decode("latin-1").rstrip("\r\n")
        self.recent.append(
            Seen(int(self.clock() * 1000), peer, raw, frame.crc_text, outcome, reply)
        )
