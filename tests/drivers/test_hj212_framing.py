"""HJ 212 framing: the Appendix A CRC, and the stream splitter under every fault, fuzzed."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.hj212.crc import crc16
from drivers.hj212.framing import FAULT_REASONS, Frame, FrameFault, Splitter, encode

pytestmark = pytest.mark.timeout(120)

WORKED_EXAMPLE = (
    b"QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;"
    b"Flag=5;CP=&&RtdInterval=30&&"
)


def appendix_a_crc(data: bytes) -> int:
    """The standard's C routine, transcribed bit by bit (the oracle)."""
    reg = 0xFFFF
    for byte in data:
        reg = (reg >> 8) ^ byte
        for _ in range(8):
            check = reg & 1
            reg >>= 1
            if check:
                reg ^= 0xA001
    return reg


def crc16_modbus(data: bytes) -> int:
    reg = 0xFFFF
    for byte in data:
        reg ^= byte
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
    return reg


def packet(segment: bytes, crc: str | None = None, length: int | None = None) -> bytes:
    """A packet built independently of ``encode``."""
    n = len(segment) if length is None else length
    c = f"{appendix_a_crc(segment):04X}" if crc is None else crc
    return b"##" + f"{n:04d}".encode() + segment + c.encode() + b"\r\n"


def split(stream: bytes, chunks: list[int] | None = None, **kw) -> list[Frame | FrameFault]:
    splitter = Splitter(**kw)
    out: list[Frame | FrameFault] = []
    pos = 0
    for size in chunks or []:
        out += splitter.feed(stream[pos : pos + size])
        pos += size
    out += splitter.feed(stream[pos:])
    return out + splitter.close()


def reasons(items) -> list[str]:
    return [i.reason if isinstance(i, FrameFault) else "frame" for i in items]


SEG = b"QN=20240101000000000;ST=22;CN=2011;PW=123456;MN=MN1;Flag=5;CP=&&a21026-Rtd=1.5&&"


def test_worked_example_crc_is_1C80_and_not_modbus():
    assert len(WORKED_EXAMPLE) == 101
    assert crc16(WORKED_EXAMPLE) == appendix_a_crc(WORKED_EXAMPLE) == 0x1C80
    assert crc16_modbus(WORKED_EXAMPLE) == 0x0759
    assert encode(WORKED_EXAMPLE) == b"##0101" + WORKED_EXAMPLE + b"1C80\r\n"


@given(st.binary(max_size=300))
def test_crc_matches_the_standards_routine(data):
    assert crc16(data) == appendix_a_crc(data)


def test_worked_example_frame_is_split_out():
    [frame] = split(b"##0101" + WORKED_EXAMPLE + b"1C80\r\n")
    assert isinstance(frame, Frame) and frame.segment == WORKED_EXAMPLE


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (packet(SEG) + packet(SEG), ["frame", "frame"]),
        (
            b"\x00\xffnoise" + packet(SEG) + b"zz" + packet(SEG),
            ["garbage", "frame", "garbage", "frame"],
        ),
        (packet(SEG, crc="0000") + packet(SEG), ["bad_crc", "frame"]),
        (packet(SEG, crc="ZZ12") + packet(SEG), ["bad_crc_field", "frame"]),
        (packet(SEG, length=len(SEG) - 3) + packet(SEG), ["wrong_length", "frame"]),
        (packet(SEG, length=len(SEG) + 3) + packet(SEG), ["wrong_length", "frame"]),
        (packet(SEG)[:40] + packet(SEG), ["truncated", "frame"]),
        (b"##12ab" + SEG + b"\r\n" + packet(SEG), ["bad_length_field", "frame"]),
        (packet(SEG * 13) + packet(SEG), ["oversize", "frame"]),
        (b"#" + packet(SEG), ["garbage", "frame"]),
        (b"##" + packet(SEG), ["garbage", "frame"]),
        (packet(SEG) + packet(SEG)[:30], ["frame", "truncated"]),
        (packet(SEG).replace(b"CP=", b"cp="), ["bad_crc"]),
    ],
    ids=[
        "merged",
        "garbage",
        "bad_crc",
        "crc_not_hex",
        "length_short",
        "length_long",
        "truncated",
        "length_not_digits",
        "oversize",
        "stray_hash",
        "double_header",
        "cut_at_close",
        "changed_byte",
    ],
)
def test_each_fault_is_reported_and_the_next_packet_kept(stream, expected):
    items = split(stream)
    assert reasons(items) == expected
    for item in items:
        if isinstance(item, FrameFault):
            assert item.reason in FAULT_REASONS and item.detail
    # the same stream cut into single bytes gives the same frames and faults
    assert reasons(split(stream, [1] * len(stream))) == expected


def test_lower_case_crc_is_accepted():
    lower = packet(SEG, crc=f"{appendix_a_crc(SEG):04x}")
    [frame] = split(lower)
    assert isinstance(frame, Frame)


def test_max_length_is_configurable():
    big = SEG * 13
    assert reasons(split(packet(big), max_length=4000)) == ["frame"]


_SEGMENT = st.binary(min_size=0, max_size=200).map(
    lambda b: bytes(c for c in b if c not in b"#\r\n")
)
_JUNK = st.binary(min_size=1, max_size=60)
_ITEMS = st.lists(st.tuples(st.booleans(), _SEGMENT, _JUNK), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=_ITEMS, cuts=st.lists(st.integers(min_value=1, max_value=50), max_size=30))
def test_any_junk_and_any_cutting_keeps_every_good_packet(items, cuts):
    stream = b""
    good: list[bytes] = []
    for with_junk, segment, junk in items:
        if with_junk:
            stream += junk
        stream += packet(segment)
        good.append(segment)
    out = split(stream, cuts)
    assert [f.segment for f in out if isinstance(f, Frame)] == good


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(1, 400), max_size=20))
def test_arbitrary_bytes_never_crash_and_memory_stays_bounded(data, cuts):
    splitter = Splitter()
    pos = 0
    for size in [*cuts, len(data)]:
        for item in splitter.feed(data[pos : pos + size]):
            assert isinstance(item, Frame | FrameFault)
        pos += size
        assert splitter.pending() <= 6 + 1024 + 6
    splitter.close()
    assert splitter.pending() == 0


def test_time_and_memory_per_byte_are_bounded():
    """1 MB of near-miss input (headers that never complete) is split in linear time, holding
    at most one frame plus one read (CPU of this thread only: the suite runs other threads)."""
    nasty = (b"##0999" + b"x" * 500 + b"\r\n") * 1500 + b"##" * 20000 + b"#0" * 20000
    splitter = Splitter()
    started = time.thread_time()
    for i in range(0, len(nasty), 4096):
        splitter.feed(nasty[i : i + 4096])
        assert splitter.pending() <= 6 + 1024 + 6 + 4096
    elapsed = time.thread_time() - started
    assert elapsed < 20, f"{len(nasty)} bytes took {elapsed:.1f} s of CPU"
    faults = splitter.close()
    assert all(len(f.raw) <= 6 + 1024 + 6 + 4096 for f in faults)
