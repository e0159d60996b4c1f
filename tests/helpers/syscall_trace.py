"""Read what a process did from its ``strace`` log: file writes, fsyncs, socket traffic.

Written for the power-cut ordering test, apart from the code under test: it knows only the
strace output format (``strace -f -qq -yy -xx -s N -o FILE``), the SQLite WAL and b-tree file
formats (https://sqlite.org/fileformat2.html) and HTTP/1.1. Events are ordered by the line on
which strace reported them: a call that ended on an earlier line than another call started had
finished before the other one ran (strace prints a call's entry before it lets the call run).
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

WRITES = {"write", "pwrite64", "writev", "pwritev", "pwritev2", "sendto", "sendmsg"}
READS = {"read", "recvfrom", "recvmsg", "readv"}
SYNCS = {"fsync", "fdatasync"}

_START = re.compile(r"^(\d+)\s+(?:[\d:.]+\s+)?(\w+)\((.*)$")
_RESUMED = re.compile(r"^(\d+)\s+(?:[\d:.]+\s+)?<\.\.\. (\w+) resumed>(.*)$")
_FD = re.compile(r"^(\d+)<((?:[A-Z0-9]+:\[[^\]]*\])|[^>]*)>")
_STRING = re.compile(r'"((?:\\x[0-9a-f]{2})*)"(\.\.\.)?')
_RETURN = re.compile(r"\)\s+=\s+(-?\d+)")
_UNFINISHED = " <unfinished ...>"


def _unhex(text: str) -> bytes:
    return bytes.fromhex(text.replace("\\x", ""))


@dataclass
class Syscall:
    """One system call: who, what, on which file or socket, which bytes, when (line numbers)."""

    pid: int
    name: str
    start: int  # line on which strace reported the call's entry
    end: int  # line on which it reported the call's result
    target: str  # the file's path, or "TCP:[local->remote]" for a socket
    data: bytes  # bytes written, or bytes read (as many as the call returned)
    result: int
    args: str = field(repr=False)

    @property
    def is_socket(self) -> bool:
        return self.target.startswith(("TCP:", "TCPv6:", "UDP:", "UNIX:", "UDPv6:"))


def parse(path: Path) -> list[Syscall]:
    """Every completed call in the trace, in the order strace saw them start."""
    calls: list[Syscall] = []
    pending: dict[tuple[int, str], tuple[int, str]] = {}
    for number, line in enumerate(path.read_text(errors="replace").splitlines()):
        if m := _RESUMED.match(line):
            pid, name, rest = int(m[1]), m[2], m[3]
            if (pid, name) not in pending:
                continue  # started before the trace began
            start, head = pending.pop((pid, name))
            calls.append(_call(pid, name, start, number, head + rest))
        elif m := _START.match(line):
            pid, name, rest = int(m[1]), m[2], m[3]
            if rest.endswith(_UNFINISHED):
                pending[(pid, name)] = (number, rest[: -len(_UNFINISHED)])
            else:
                calls.append(_call(pid, name, number, number, rest))
    return sorted(calls, key=lambda c: c.start)


def _call(pid: int, name: str, start: int, end: int, args: str) -> Syscall:
    fd = _FD.match(args)
    target = ""
    if fd:
        target = fd[2] if ":[" in fd[2] else _unhex(fd[2]).decode(errors="replace")
    strings = _STRING.findall(args)
    if any(truncated for _s, truncated in strings):
        raise ValueError(f"strace cut the data of a {name} call short: raise -s ({args[:80]})")
    vectored = name in {"writev", "pwritev", "pwritev2", "sendmsg", "recvmsg", "readv"}
    chosen = strings if vectored else strings[:1]
    data = b"".join(_unhex(s) for s, _t in chosen)
    ret = _RETURN.search(args)
    result = int(ret[1]) if ret else -1
    if name in READS and result >= 0:
        data = data[:result]
    return Syscall(pid, name, start, end, target, data, result, args)


# --- the SQLite write-ahead log ------------------------------------------------------------
@dataclass
class Transaction:
    """Frames one connection appended to the WAL, ending with a commit frame."""

    first_write: int  # line of the first write of the transaction's frames
    commit_written: int  # line on which the commit frame's page was written
    pages: list[bytes]


def wal_transactions(calls: Iterable[Syscall], wal: str) -> list[Transaction]:
    """The committed transactions in the WAL file ``wal`` (frame header: 24 bytes, bytes 4-7
    non-zero on a commit frame; then the page). The 32-byte WAL header is skipped."""
    out: list[Transaction] = []
    first: int | None = None
    pages: list[bytes] = []
    commit_header = False
    for c in calls:
        if c.target != wal or c.name not in WRITES or c.result < 0:
            continue
        if len(c.data) == 32 and c.data[:4] in (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83"):
            continue  # the WAL header, rewritten when the log restarts after a checkpoint
        if len(c.data) == 24:
            first = c.start if first is None else first
            commit_header = int.from_bytes(c.data[4:8], "big") != 0
            continue
        pages.append(c.data)
        if commit_header:
            assert first is not None
            out.append(Transaction(first, c.end, pages))
            first, pages, commit_header = None, [], False
    return out


def syncs_of(calls: Iterable[Syscall], path: str) -> list[Syscall]:
    return [c for c in calls if c.name in SYNCS and c.target == path and c.result == 0]


def synced_between(syncs: list[Syscall], after: int, before: int) -> bool:
    """An fsync of the file started after line ``after`` and finished before line ``before``."""
    return any(after < s.start and s.end < before for s in syncs)


# --- SQLite b-tree pages: index records (the ``deliveries`` table is WITHOUT ROWID) -----------
def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = 0
    for k in range(9):
        byte = buf[i + k]
        if k == 8:
            return (value << 8) | byte, i + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, i + k + 1
    raise AssertionError("unreachable")


def _record(payload: bytes) -> list[object]:
    header_size, i = _varint(payload, 0)
    types = []
    while i < header_size:
        t, i = _varint(payload, i)
        types.append(t)
    values: list[object] = []
    pos = header_size
    int_sizes = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8}
    for t in types:
        if t == 0:
            values.append(None)
        elif t in int_sizes:
            n = int_sizes[t]
            values.append(int.from_bytes(payload[pos : pos + n], "big", signed=True))
            pos += n
        elif t == 7:
            values.append(payload[pos : pos + 8])
            pos += 8
        elif t in (8, 9):
            values.append(t - 8)
        elif t >= 12:
            n = (t - 12) // 2
            chunk = payload[pos : pos + n]
            values.append(chunk.decode() if t % 2 else chunk)
            pos += n
        else:
            raise ValueError(f"reserved serial type {t}")
    if pos > len(payload):
        raise ValueError("record runs past its cell")
    return values


def index_records(page: bytes) -> list[list[object]]:
    """The records of an index b-tree page (leaf 0x0a or interior 0x02); [] for other pages."""
    kind = page[0]
    if kind not in (0x02, 0x0A):
        return []
    header = 12 if kind == 0x02 else 8
    cells = int.from_bytes(page[3:5], "big")
    out = []
    try:
        for k in range(cells):
            at = int.from_bytes(page[header + 2 * k : header + 2 * k + 2], "big")
            at += 4 if kind == 0x02 else 0  # interior cells start with the left child page
            size, i = _varint(page, at)
            out.append(_record(page[i : i + size]))
    except (IndexError, ValueError, UnicodeDecodeError):
        return []  # not an index page after all (free or overflow page)
    return out


# --- HTTP/1.1 exchanges on sockets ---------------------------------------------------------
@dataclass
class Exchange:
    """One request and its answer on one connection."""

    socket: str
    request_start: int  # line of the first send of the request
    request: bytes
    answer: bytes = b""
    answer_read: int | None = None  # line on which the last byte of the answer was read

    @property
    def body(self) -> bytes:
        return self.request.partition(b"\r\n\r\n")[2]

    @property
    def status(self) -> int | None:
        m = re.match(rb"HTTP/1\.[01] (\d{3}) ", self.answer)
        return int(m[1]) if m else None


def _content_length(message: bytes) -> int:
    m = re.search(
        rb"\r\ncontent-length:\s*(\d+)\r\n",
        message.partition(b"\r\n\r\n")[0] + b"\r\n",
        re.IGNORECASE,
    )
    return int(m[1]) if m else 0


def http_exchanges(calls: Iterable[Syscall]) -> list[Exchange]:
    """Requests the process sent (``POST``/``GET``...) and the answers it read, per socket."""
    open_: dict[str, Exchange] = {}
    out: list[Exchange] = []
    for c in calls:
        if not c.is_socket or c.result <= 0:
            continue
        ex = open_.get(c.target)
        if c.name in WRITES:
            if ex is None or ex.answer:
                if not re.match(rb"[A-Z]+ /", c.data):
                    continue
                ex = open_[c.target] = Exchange(c.target, c.start, b"")
                out.append(ex)
            ex.request += c.data
        elif c.name in READS and ex is not None:
            ex.answer += c.data
            head, sep, body = ex.answer.partition(b"\r\n\r\n")
            if sep and len(body) >= _content_length(ex.answer) and ex.answer_read is None:
                ex.answer_read = c.end
    return out


@dataclass(frozen=True)
class BatchOnTheWire:
    seq: int
    signature: str


def batch_in(body: bytes) -> BatchOnTheWire | None:
    """The seq and signature of a compact JWS body, gzip'd or not (payload decoded with
    base64/json)."""
    if body.startswith(b"\x1f\x8b"):  # gzip (HTTP Content-Encoding, MQTT .../batches/gzip)
        try:
            body = zlib.decompressobj(31).decompress(body, 64 * 1024 * 1024)
        except zlib.error:
            return None
    parts = body.strip().split(b".")
    if len(parts) != 3:
        return None
    raw = parts[1] + b"=" * (-len(parts[1]) % 4)
    try:
        seq = json.loads(base64.urlsafe_b64decode(raw))["seq"]
    except (ValueError, KeyError, TypeError):
        return None
    return BatchOnTheWire(int(seq), parts[2].decode())


# --- MQTT 3.1.1 on sockets: PUBLISH (QoS 1) out, PUBACK in ---------------------------------------
@dataclass
class Publish:
    """One QoS 1 PUBLISH the process sent, and when it read the broker's PUBACK for it."""

    socket: str
    first_byte_sent: int  # line of the send holding the packet's first byte
    packet_id: int
    payload: bytes
    puback_read: int | None = None  # line of the read that completed the PUBACK


def _packets(chunks: list[tuple[int, bytes]]) -> list[tuple[int, int, bytes]]:
    """Split a byte stream, received or sent in chunks (line, bytes), into MQTT control packets:
    (line holding the first byte, line holding the last byte, packet)."""
    stream = b"".join(data for _line, data in chunks)
    offsets, at = [], 0
    for line, data in chunks:
        offsets.append((at, line))
        at += len(data)

    def line_of(position: int) -> int:
        return max((o, line) for o, line in offsets if o <= position)[1]

    out, pos = [], 0
    while pos + 2 <= len(stream):
        length, shift, i = 0, 0, pos + 1
        while i < len(stream):
            byte = stream[i]
            length |= (byte & 0x7F) << shift
            shift, i = shift + 7, i + 1
            if byte < 0x80 or shift > 21:
                break
        end = i + length
        if end > len(stream):
            break  # cut short: the process ended mid-packet
        out.append((line_of(pos), line_of(end - 1), stream[pos:end]))
        pos = end
    return out


def mqtt_publishes(calls: Iterable[Syscall]) -> list[Publish]:
    """QoS 1 PUBLISH packets sent on MQTT connections (those opened with CONNECT) and their
    PUBACKs, matched by packet id on the same connection."""
    sent: dict[str, list[tuple[int, bytes]]] = {}
    read: dict[str, list[tuple[int, bytes]]] = {}
    for c in calls:
        if not c.is_socket or c.result <= 0:
            continue
        if c.name in WRITES:
            sent.setdefault(c.target, []).append((c.start, c.data))
        elif c.name in READS:
            read.setdefault(c.target, []).append((c.end, c.data))
    out: list[Publish] = []
    for sock, chunks in sent.items():
        if not chunks[0][1].startswith(b"\x10"):  # not an MQTT connection
            continue
        events: list[tuple[int, int, Publish | None]] = []  # (line, packet id, publish)
        for first, _last, packet in _packets(chunks):
            if packet[0] >> 4 != 3 or (packet[0] >> 1) & 3 != 1:
                continue  # not a QoS 1 PUBLISH
            body = packet[1:]
            while body[0] & 0x80:  # skip the remaining-length bytes
                body = body[1:]
            body = body[1:]
            topic_end = 2 + int.from_bytes(body[:2], "big")
            packet_id = int.from_bytes(body[topic_end : topic_end + 2], "big")
            publish = Publish(sock, first, packet_id, body[topic_end + 2 :])
            events.append((first, packet_id, publish))
            out.append(publish)
        for _first, last, packet in _packets(read.get(sock, [])):
            if packet[0] == 0x40:  # PUBACK
                events.append((last, int.from_bytes(packet[2:4], "big"), None))
        waiting: dict[int, Publish] = {}
        for line, packet_id, publish in sorted(events, key=lambda e: (e[0], e[2] is None)):
            if publish is not None:
                waiting[packet_id] = publish
            elif packet_id in waiting:
                waiting.pop(packet_id).puback_read = line
    return out
