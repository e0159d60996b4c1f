"""From a data packet to readings: channels, fields, flags -> status, DataTime -> UTC.

Also ``Reassembly``: a message split into PNUM packets (same QN) is put back together before
it is read, with a bounded number of messages waiting.
"""

from __future__ import annotations

import math
from collections import OrderedDict
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


class Reassembly:
    """Collects the packets of split messages (PNUM/PNO, same MN and QN) until each is whole."""

    def __init__(self, limit: int = MAX_WAITING_MESSAGES) -> None:
        self.limit = limit
        self._waiting: OrderedDict[tuple[str, str | None, str], dict[int, Packet]] = OrderedDict()

    def add(self, packet: Packet) -> tuple[Packet | None, str | None]:
        """(the whole message when this packet completes it, or None; a dropped message's
        description when an older one had to be given up)."""
        check_parts(packet)
        if not packet.split:
            return packet, None
        key = (packet.mn, packet.qn, packet.cn)
        parts = self._waiting.setdefault(key, {})
        parts[packet.pno] = packet  # a part sent twice replaces itself
        dropped = None
        if len(parts) == packet.pnum:
            del self._waiting[key]
            ordered = [parts[i] for i in sorted(parts)]
            cp = ";".join(p.cp.strip(";") for p in ordered)
            first = ordered[0]
            whole = Packet(
                cn=first.cn,
                mn=first.mn,
                qn=first.qn,
                st=first.st,
                pw=first.pw,
                flag=first.flag,
                pnum=None,
                pno=None,
                cp=cp,
                header=first.header,
            )
            return whole, None
        if len(self._waiting) > self.limit:
            (_, qn, cn), old = self._waiting.popitem(last=False)
            total = next(iter(old.values())).pnum
            dropped = f"split message QN={qn} CN={cn}: only {len(old)} of {total} part(s) came"
        return None, dropped

    def waiting(self) -> int:
        return len(self._waiting)
