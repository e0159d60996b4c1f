"""The simulated datalogger's own HJ 212 wire code, written apart from the driver's (so each
checks the other): Appendix A CRC, packets, a forgiving reader of what the agent sends, and the
faults a datalogger's packets can suffer on the way (``spoil``)."""

from __future__ import annotations

import re

_FRAME = re.compile(rb"##(\d{4})")
FAULTS = (
    "garbage",
    "bad-crc",
    "truncated",
    "split",
    "merged",
    "wrong-length",
    "oversize",
    "duplicate",
    "wrong-password",
    "unknown-mn",
    "no-flag",
)
GARBAGE = b"\x00\xffAT+CSQ\r\n\x8f"


def crc16(data: bytes) -> int:
    """HJ 212-2017 Appendix A, transcribed from the standard's C routine."""
    reg = 0xFFFF
    for byte in data:
        reg = (reg >> 8) ^ byte
        for _ in range(8):
            carry = reg & 1
            reg >>= 1
            if carry:
                reg ^= 0xA001
    return reg


def packet(segment: str) -> bytes:
    """``##`` + length + segment + CRC + CR LF."""
    data = segment.encode("ascii")
    return b"##%04d%s%04X\r\n" % (len(data), data, crc16(data))


def fields(segment: str) -> dict[str, str]:
    """Header fields and CP fields of a segment, flattened (``CP`` keys win)."""
    head, _, cp = segment.partition("CP=&&")
    out = dict(item.split("=", 1) for item in head.split(";") if "=" in item)
    for group in cp.rstrip("&").split(";"):
        for item in group.split(","):
            if "=" in item:
                key, value = item.split("=", 1)
                out[key] = value
    return out


class Reader:
    """Splits what the agent sends into segments whose CRC is right; counts the others."""

    def __init__(self) -> None:
        self.buf = b""
        self.bad = 0

    def feed(self, data: bytes) -> list[str]:
        self.buf += data
        out = []
        while True:
            m = _FRAME.search(self.buf)
            if m is None:
                self.buf = self.buf[-5:]
                return out
            n = int(m.group(1))
            end = m.end() + n + 6
            if len(self.buf) < end:
                self.buf = self.buf[m.start() :]
                return out
            seg = self.buf[m.end() : m.end() + n]
            crc = self.buf[m.end() + n : m.end() + n + 4]
            self.buf = self.buf[end:]
            if crc.upper() == b"%04X" % crc16(seg):
                out.append(seg.decode("latin-1"))
            else:
                self.bad += 1


def spoil(fault: str | None, segment: str, password: str, mn: str) -> list[bytes]:
    """The writes that carry ``segment`` under ``fault`` (a packet spoilt without its good copy
    following is re-sent when its answer does not come)."""
    good = packet(segment)
    if fault is None:
        return [good]
    if fault == "garbage":
        return [GARBAGE, good]
    if fault == "bad-crc":
        return [good[:-6] + (b"0000" if not good[:-2].endswith(b"0000") else b"1111") + b"\r\n"]
    if fault == "truncated":
        return [good[: len(good) // 2], good]
    if fault == "split":
        third = len(good) // 3
        return [good[:third], good[third : 2 * third], good[2 * third :]]
    if fault == "wrong-length":
        return [b"##%04d" % (int(good[2:6]) + 7) + good[6:], good]
    if fault == "oversize":
        return [b"##9000" + b"x" * 20, good]
    if fault == "duplicate":
        return [good, good]
    if fault == "wrong-password":
        return [packet(segment.replace(f"PW={password}", "PW=bad000")), good]
    if fault == "unknown-mn":
        return [packet(segment.replace(f"MN={mn}", "MN=NOBODY")), good]
    if fault == "no-flag":
        return [packet(segment.replace("Flag=5;", ""))]  # no answer will come
    raise ValueError(f"unknown fault {fault!r} (known: {', '.join(FAULTS)})")
