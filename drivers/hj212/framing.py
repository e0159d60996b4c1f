"""HJ 212 framing: ``##`` + 4-digit length + data segment + 4 hex CRC + CR LF.

``Splitter`` turns a byte stream (TCP or serial, cut anywhere) into good frames and faults. Each
fault has a reason (``FAULT_REASONS``) and the bytes it dropped; it never drops the start of the
next packet: after a bad frame it resynchronises on the next ``##``. Memory is bounded: at most
one frame of ``max_length`` plus the bytes of one ``feed`` are held.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.hj212.crc import crc16

HEADER = b"##"
TRAILER = b"\r\n"
STANDARD_MAX_LENGTH = 1024  # the standard's data segment limit (0 <= n <= 1024)
LENGTH_FIELD_MAX = 9999  # what four decimal digits can say
_JUNK_SAMPLE = 120  # garbage bytes kept to show
_JUNK_REPORT = 4096  # a longer run of garbage is reported in parts
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = frozenset(b"0123456789")

FAULT_REASONS = {
    "garbage": "bytes outside any packet (no ## before them)",
    "bad_length_field": "the 4 characters after ## are not a decimal length",
    "oversize": "the length field is over the configured maximum",
    "wrong_length": "CR LF is not where the length field puts it",
    "truncated": "a packet stopped before its end (a new ## came, or the link closed)",
    "bad_crc_field": "the 4 characters before CR LF are not hex digits",
    "bad_crc": "the CRC does not match the data segment (Appendix A CRC)",
}


@dataclass(frozen=True, slots=True)
class Frame:
    """A packet whose length, trailer and CRC are right."""

    segment: bytes  # the data segment (what the CRC covers)
    crc_text: str  # the CRC as the datalogger wrote it (case kept)
    raw: bytes  # the whole packet, ## to CR LF


@dataclass(frozen=True, slots=True)
class FrameFault:
    """Bytes dropped from the stream, and why."""

    reason: str  # a key of FAULT_REASONS
    detail: str
    raw: bytes


def encode(segment: str | bytes) -> bytes:
    """A whole packet for a data segment: header, length, segment, CRC (upper-case), CR LF."""
    data = segment.encode("ascii") if isinstance(segment, str) else segment
    if len(data) > LENGTH_FIELD_MAX:
        raise ValueError(f"data segment of {len(data)} bytes does not fit a 4-digit length")
    return b"%s%04d%s%04X%s" % (HEADER, len(data), data, crc16(data), TRAILER)


def show(raw: bytes | bytearray, limit: int = 120) -> str:
    """Bytes quoted for a log line or a technician: text as is, the rest as escapes."""
    text = repr(bytes(raw[:limit]))[2:-1]
    return text + (f"... ({len(raw)} bytes)" if len(raw) > limit else "")


class Splitter:
    """Cuts a byte stream into ``Frame`` and ``FrameFault`` items, in stream order."""

    def __init__(self, max_length: int = STANDARD_MAX_LENGTH) -> None:
        if not 0 < max_length <= LENGTH_FIELD_MAX:
            raise ValueError(f"max_length must be 1..{LENGTH_FIELD_MAX}")
        self.max_length = max_length
        self._buf = bytearray()
        self._tail_budget = 0  # bytes of a bad packet's rest still to skip without counting
        self._junk, self._junk_count = b"", 0  # a run of garbage not reported yet

    def pending(self) -> int:
        """Bytes held waiting for the rest of a packet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame | FrameFault]:
        """Add received bytes; return every frame and fault they complete."""
        self._buf += data
        out: list[Frame | FrameFault] = []
        while self._step(out):
            pass
        return out

    def close(self) -> list[FrameFault]:
        """The link ended: whatever is held is a cut packet (or garbage)."""
        out: list[Frame | FrameFault] = []
        while self._step(out):
            pass
        rest = bytes(self._buf)
        self._buf.clear()
        faults = [f for f in out if isinstance(f, FrameFault)]
        if rest and not rest.startswith(HEADER) and not self._tail_budget:
            self._junk += rest[: _JUNK_SAMPLE - len(self._junk)]
            self._junk_count += len(rest)
        if self._junk_count:
            faults.append(self._garbage("before the link closed"))
        if rest.startswith(HEADER):
            detail = "the link closed in the middle of a packet"
            faults.append(FrameFault("truncated", detail, rest))
        self._tail_budget = 0
        return faults

    def _drop(self, count: int) -> bytes:
        dropped = bytes(self._buf[:count])
        del self._buf[:count]
        return dropped

    def _packet_start(self, after: int) -> int:
        """Index of the next ## at or after ``after`` that is not followed by another #."""
        buf = self._buf
        start = buf.find(HEADER, after)
        while start >= 0 and start + 2 < len(buf) and buf[start + 2] == 0x23:
            start += 1  # "###0101": the first # is noise, the packet starts one later
        return start

    def _resync_point(self, after: int) -> int:
        """Where the next packet may start: the next ## after ``after``, or what may begin one."""
        nxt = self._packet_start(after)
        if nxt >= 0:
            return nxt
        return len(self._buf) - (1 if self._buf.endswith(b"#") else 0)

    def _step(self, out: list[Frame | FrameFault]) -> bool:
        """Take one item off the front of the buffer; False when more bytes are needed."""
        buf = self._buf
        start = self._packet_start(0)
        if start != 0:
            keep = self._resync_point(0)
            if keep == 0:
                return False
            self._skip_junk(self._drop(keep), out, packet_follows=start > 0)
            return True
        self._tail_budget = 0
        field = bytes(buf[2:6])
        digits = set(field) <= _DIGITS
        if digits and len(buf) < 6:
            return False
        if self._junk_count:  # reported once the packet after it is known to start here
            out.append(self._garbage("between packets"))
        if not digits:
            out.append(self._bad(2, "bad_length_field", f"length field {show(field)}"))
            return True
        length = int(field)
        if length > self.max_length:
            detail = f"length {length} > maximum {self.max_length}"
            out.append(self._bad(2, "oversize", detail, tail=length + 12))
            return True
        end = 6 + length + 4 + 2
        body = bytes(buf[6 : min(len(buf), end - 2)])
        early_end, next_start = body.find(TRAILER), body.find(HEADER)
        if next_start >= 0 and (early_end < 0 or next_start < early_end):
            detail = f"length field says {length}, a new packet starts after {next_start - 4}"
            out.append(FrameFault("truncated", detail, self._drop(6 + next_start)))
            return True
        if early_end >= 0:
            detail = f"length field says {length}, CR LF after {early_end - 4} characters"
            out.append(FrameFault("wrong_length", detail, self._drop(6 + early_end + 2)))
            return True
        if len(buf) < end:
            return False
        if buf[end - 2 : end] != TRAILER:
            detail = f"length field says {length}, no CR LF after it: {show(buf[end - 2 : end])}"
            out.append(self._bad(end - 2, "wrong_length", detail))
            return True
        raw = self._drop(end)
        segment, crc_field = raw[6 : 6 + length], raw[6 + length : 6 + length + 4]
        if not set(crc_field) <= _HEX:
            out.append(FrameFault("bad_crc_field", f"CRC field {show(crc_field)}", raw))
            return True
        computed = crc16(segment)
        if int(crc_field, 16) != computed:
            detail = f"CRC {crc_field.decode()} received, {computed:04X} computed"
            out.append(FrameFault("bad_crc", detail, raw))
            return True
        out.append(Frame(segment, crc_field.decode(), raw))
        return True

    def _skip_junk(self, junk: bytes, out: list[Frame | FrameFault], packet_follows: bool) -> None:
        """Bytes before a packet: garbage, except the rest of a bad packet reported just before
        (up to its CR LF, at most one packet's worth)."""
        if self._tail_budget:
            cut = junk.find(TRAILER, 0, self._tail_budget)
            if cut >= 0:
                junk, self._tail_budget = junk[cut + 2 :], 0
            elif len(junk) <= self._tail_budget:
                self._tail_budget = 0 if packet_follows else self._tail_budget - len(junk)
                junk = b""
            else:
                junk, self._tail_budget = junk[self._tail_budget :], 0
        self._junk += junk[: _JUNK_SAMPLE - len(self._junk)]
        self._junk_count += len(junk)
        if self._junk_count >= _JUNK_REPORT:
            out.append(self._garbage("between packets"))

    def _garbage(self, where: str) -> FrameFault:
        """One fault for a run of garbage (however it was cut into reads); a sample kept."""
        fault = FrameFault("garbage", f"{self._junk_count} byte(s) {where}", bytes(self._junk))
        self._junk, self._junk_count = b"", 0
        return fault

    def _bad(self, skip: int, reason: str, detail: str, tail: int = 0) -> FrameFault:
        """Drop a bad packet's start up to the next ##; the rest of its line is not garbage."""
        dropped = self._drop(self._resync_point(skip))
        if dropped.find(TRAILER) < 0:  # its CR LF has not come yet
            self._tail_budget = max(tail, self.max_length + 12)
        return FrameFault(reason, detail, dropped)
