"""From a data packet to readings: channels, fields, flags -> status, DataTime -> UTC.

Also ``Reassembly``: the parts of a message split into PNUM packets (same QN) are read as soon
as the message's DataTime is known, with a bounded number of messages waiting.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from core.reading import FAULT, Reading
from drivers.hj212.config import Hj212Config
from drivers.hj212.packet import CpData, Packet, PacketError, check_parts, parse_cp

DATA_COMMANDS = frozenset({"2011", "2051", "2061", "2031"})
MAX_WAITING_MESSAGES = 8


def data_time_ms(text: str | None, zone: ZoneInfo) -> int:
    """``yyyyMMddHHmmss`` (or with milliseconds, ``…SSS``) in ``zone`` as UTC epoch ms."""
    if text is None:
        raise PacketError("data packet without DataTime")
    if not text.isdigit() or len(text) not in (14, 17):
        raise PacketError(f"DataTime={text[:20]!r}: expected yyyyMMddHHmmss")
    try:
        local = datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=zone)
    except ValueError:
        raise PacketError(f"DataTime={text!r} is not a date and time") from None
    millis = int(text[14:]) if len(text) == 17 else 0
    return int(local.timestamp()) * 1000 + millis


def _value(raw: str | None, where: str) -> tuple[float | None, str | None]:
    if raw is None:
        return None, f"{where} missing"
    try:
        value = float(raw)
    except ValueError:
        return None, f"{where}={raw[:20]!r} is not a number"
    if not math.isfinite(value):
        return None, f"{where}={raw!r} is not a finite number"
    return value, None


class ReadingMaker:
    """Turns one device's complete data packets into readings."""

    def __init__(self, config: Hj212Config, device: str) -> None:
        self.config, self.device = config, device
        self.zone = ZoneInfo(config.timezone)
        self.by_code = {c.code: c for c in config.channels}
        self.unconfigured: set[str] = set()  # codes sent that no channel takes (for probe)

    def readings(self, packet: Packet, cp: CpData | None = None) -> list[Reading]:
        """The readings a complete data packet carries; PacketError if it cannot be read."""
        if packet.cn not in DATA_COMMANDS or packet.cn not in self.config.data:
            return []
        cp = cp or parse_cp(packet.cp)
        time_ms = data_time_ms(cp.data_time, self.zone)
        out: list[Reading] = []
        for code, fields in cp.values.items():
            channel = self.by_code.get(code)
            if channel is None:
                if len(self.unconfigured) < 200:
                    self.unconfigured.add(code)
                continue
            status, flag_note = self._status(fields.get("Flag"))
            if packet.cn == "2011":
                wanted = [("Rtd", channel.param, channel.unit)] if channel.realtime else []
            else:
                wanted = [
                    (
                        f,
                        self.config.aggregate_name(channel, f, packet.cn),
                        channel.cou_unit or channel.unit if f == "Cou" else channel.unit,
                    )
                    for f in channel.aggregates
                ]
            for name, param, unit in wanted:
                if name not in fields:
                    continue  # this packet does not carry that field
                value, error = _value(fields[name], f"{code}-{name}")
                if error is not None:
                    out.append(Reading(self.device, param, unit, time_ms, None, FAULT, error))
                else:
                    out.append(Reading(self.device, param, unit, time_ms, value, status, flag_note))
        return out

    def _status(self, flag: str | None) -> tuple[str, str | None]:
        """(status, note keeping the raw flag when it is not N)."""
        if flag is None or flag == "":
            return self.config.missing_flag, None
        status = self.config.flags.get(flag)
        if status is None:
            return FAULT, f"HJ 212 flag {flag[:8]!r} not in the flag table"
        return status, None if flag == "N" else f"HJ 212 flag {flag}"


@dataclass
class _Message:
    pnum: int
    data_time: str | None = None
    seen: set[int] = field(default_factory=set)
    held: dict[int, tuple[Packet, CpData]] = field(default_factory=dict)


class Reassembly:
    """Parts of split messages (PNUM/PNO, same MN, QN and CN).

    A part is readable as soon as the message's ``DataTime`` is known (from this part or an
    earlier one); a part that comes before it waits (at most ``limit`` messages wait, the
    oldest is given up first). When the last part came, every waiting part is released.
    """

    def __init__(self, limit: int = MAX_WAITING_MESSAGES) -> None:
        self.limit = limit
        self._waiting: OrderedDict[tuple[str, str | None, str], _Message] = OrderedDict()

    def add(self, packet: Packet) -> tuple[list[tuple[Packet, CpData]], str | None]:
        """(the parts readable now, each with its CP and DataTime; a given-up message's
        description or None). PacketError if PNUM/PNO are wrong."""
        check_parts(packet)
        cp = parse_cp(packet.cp)
        pnum, pno = packet.pnum, packet.pno
        if not packet.split or pnum is None or pno is None:
            return [(packet, cp)], None
        key = (packet.mn, packet.qn, packet.cn)
        message = self._waiting.get(key)
        if message is None:
            message = self._waiting[key] = _Message(pnum)
        message.seen.add(pno)
        message.data_time = message.data_time or cp.data_time
        message.held[pno] = (packet, cp)  # a part sent twice replaces itself
        ready: list[tuple[Packet, CpData]] = []
        if message.data_time or len(message.seen) >= message.pnum:
            for pno in sorted(message.held):
                part, part_cp = message.held[pno]
                time = part_cp.data_time or message.data_time
                ready.append((part, CpData(time, part_cp.values, part_cp.other)))
            message.held.clear()
        if len(message.seen) >= message.pnum:
            del self._waiting[key]
        dropped = None
        if len(self._waiting) > self.limit:
            (_, qn, cn), old = self._waiting.popitem(last=False)
            dropped = (
                f"split message QN={qn} CN={cn}: {len(old.seen)} of {old.pnum} part(s) came, "
                f"{len(old.held)} not readable without DataTime"
            )
        return ready, dropped

    def waiting(self) -> int:
        return len(self._waiting)
