"""HJ 212 data segments: ``QN=…;ST=…;CN=…;PW=…;MN=…;Flag=…;[PNUM=…;PNO=…;]CP=&&…&&``.

``parse_segment`` reads a segment into a ``Packet`` (or raises ``PacketError`` saying what is
wrong); ``parse_cp`` reads the ``CP`` part into the ``DataTime`` and per-pollutant fields;
``build_segment`` writes the segments the agent sends (answers, commands). Tolerated quirks:
lower-case field names' values as sent, a missing ``;`` before ``CP`` or before the closing
``&&``, an absent ``Flag`` (no answer asked), extra header fields (kept in ``header``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FLAG_ANSWER = 0x01  # Flag bit A: the sender wants an answer
FLAG_SPLIT = 0x02  # Flag bit D: the message is split into PNUM packets
FLAG_V2017 = 0x04  # version bits V5..V0 = 000001: HJ 212-2017
MAX_PARTS = 99  # a message split into more packets than this is refused

_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_DIGITS = re.compile(r"^\d{1,9}$")


class PacketError(ValueError):
    """A data segment that is framed right but cannot be read; the message says why."""


@dataclass(frozen=True, slots=True)
class Packet:
    """One data segment's header fields and its raw ``CP`` content."""

    cn: str
    mn: str
    qn: str | None = None
    st: str | None = None
    pw: str | None = None
    flag: int | None = None
    pnum: int | None = None
    pno: int | None = None
    cp: str = ""
    header: dict[str, str] = field(default_factory=dict)

    @property
    def wants_answer(self) -> bool:
        return self.flag is not None and bool(self.flag & FLAG_ANSWER)

    @property
    def split(self) -> bool:
        return self.pnum is not None and self.pnum > 1


@dataclass(frozen=True, slots=True)
class CpData:
    """The ``CP`` content: ``DataTime``, ``code -> {field: value}``, and the other keys."""

    data_time: str | None
    values: dict[str, dict[str, str]]
    other: dict[str, str]


def _pairs(text: str, where: str) -> list[tuple[str, str]]:
    out = []
    for group in text.split(";"):
        for item in group.split(","):
            item = item.strip()
            if not item:
                continue  # "a=1;;b=2" and a trailing ";" are tolerated
            key, eq, value = item.partition("=")
            if not eq:
                raise PacketError(f"{where}: {item[:40]!r} is not key=value")
            out.append((key.strip(), value.strip()))
    return out


def parse_segment(segment: bytes) -> Packet:
    """Read a data segment's header and keep its CP text; ``PacketError`` if it is not one."""
    text = segment.decode("latin-1")  # never fails; values we use are checked below
    cp_at = text.find("CP=&&")
    if cp_at < 0:
        raise PacketError("no CP=&& in the data segment")
    cp = text[cp_at + 5 :]
    if not cp.endswith("&&"):
        raise PacketError(f"CP does not end with && (ends with {cp[-10:]!r})")
    cp = cp[:-2]
    if "&&" in cp:
        raise PacketError("CP holds && before its end")
    header: dict[str, str] = {}
    for key, value in _pairs(text[:cp_at], "header"):
        if not _KEY.match(key):
            raise PacketError(f"header: field name {key[:20]!r} is not a name")
        header[key] = value
    cn, mn = header.get("CN"), header.get("MN")
    if cn is None or not _DIGITS.match(cn):
        raise PacketError(f"CN (command code) missing or not a number: {cn!r}")
    if not mn:
        raise PacketError("MN (the datalogger's id) missing")
    return Packet(
        cn=cn,
        mn=mn,
        qn=header.get("QN"),
        st=header.get("ST"),
        pw=header.get("PW"),
        flag=_number(header, "Flag"),
        pnum=_number(header, "PNUM"),
        pno=_number(header, "PNO"),
        cp=cp,
        header=header,
    )


def _number(header: dict[str, str], key: str) -> int | None:
    value = header.get(key)
    if value is None or value == "":
        return None
    if not _DIGITS.match(value):
        raise PacketError(f"{key}={value[:20]!r} is not a number")
    return int(value)


def check_parts(packet: Packet) -> None:
    """PNUM/PNO make sense (1 <= PNO <= PNUM <= MAX_PARTS)."""
    if (packet.pnum is None) != (packet.pno is None):
        raise PacketError("PNUM and PNO go together (one of them is missing)")
    pnum, pno = packet.pnum, packet.pno
    if pnum is not None and pno is not None and not 1 <= pno <= pnum <= MAX_PARTS:
        raise PacketError(f"PNO={packet.pno} of PNUM={packet.pnum} (expected 1 <= PNO <= PNUM)")


def parse_cp(cp: str) -> CpData:
    """Read CP content: ``DataTime=…;code-Field=value,code-Field=value;…``."""
    data_time = None
    values: dict[str, dict[str, str]] = {}
    other: dict[str, str] = {}
    for key, value in _pairs(cp, "CP"):
        if key == "DataTime":
            data_time = value
        elif "-" in key:
            code, _, name = key.partition("-")
            values.setdefault(code, {})[name] = value
        else:
            other[key] = value
    return CpData(data_time, values, other)


def build_segment(
    *, qn: str | None, st: str, cn: str, pw: str, mn: str, flag: int, cp: str = ""
) -> str:
    """A data segment the agent sends (an answer or a command)."""
    head = f"QN={qn};" if qn else ""
    return f"{head}ST={st};CN={cn};PW={pw};MN={mn};Flag={flag};CP=&&{cp}&&"
