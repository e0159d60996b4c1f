"""Fuzzing the HJ 212 data-segment parser and the whole receive path: no input may raise
anything but ``PacketError``, invent a value, or take unbounded time."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.reading import STATUSES
from drivers.hj212.config import Hj212Config
from drivers.hj212.framing import encode
from drivers.hj212.links import Dispatcher, pump
from drivers.hj212.packet import PacketError, parse_segment
from drivers.hj212.readings import ReadingMaker
from drivers.hj212.session import Session

pytestmark = pytest.mark.timeout(120)

CONFIG = Hj212Config.model_validate(
    {
        "name": "fuzz",
        "driver": "hj212",
        "port": 9000,
        "mn": "MN1",
        "password": "123456",
        "time_sync_interval_s": 0,
        "channels": [
            {"code": "a21026", "param": "SO2", "aggregates": ["Avg", "Min", "Max", "Cou"]},
            {"code": "a34013", "param": "Dust"},
        ],
    }
)
HEAD = "QN=20240101000000000;ST=22;CN={cn};PW=123456;MN=MN1;Flag={flag};"
_PIECES = st.sampled_from(
    [
        "DataTime=20240101120000",
        "DataTime=2024",
        "a21026-Rtd=1.5",
        "a21026-Rtd=",
        "a21026-Rtd=1e999",
        "a21026-Avg=-3",
        "a21026-Flag=N",
        "a21026-Flag=ZZ",
        "a34013-Rtd=nan",
        "a34013-Flag=C",
        "PNUM=2",
        "PNO=1",
        "x",
        "=",
        "-",
        "&&",
        "",
    ]
)
_SEPARATORS = st.sampled_from([";", ",", ";;", "=", "&"])


@st.composite
def near_segments(draw) -> bytes:
    cn = draw(st.sampled_from(["2011", "2051", "2061", "2031", "1011", "x", ""]))
    flag = draw(st.sampled_from(["5", "4", "", "-1", "7"]))
    pieces = draw(st.lists(st.tuples(_PIECES, _SEPARATORS), max_size=12))
    cp = "".join(p + s for p, s in pieces)
    tail = draw(st.sampled_from(["&&", "", "&", "&&&&"]))
    return (HEAD.format(cn=cn, flag=flag) + "CP=&&" + cp + tail).encode()


def _check(segment: bytes) -> None:
    try:
        packet = parse_segment(segment)
        readings = ReadingMaker(CONFIG, "fuzz").readings(packet)
    except PacketError as exc:
        assert str(exc)
        return
    for r in readings:
        assert r.status in STATUSES
        assert r.value is None or math.isfinite(r.value)
        assert r.value is not None or r.error


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_segments())
def test_near_valid_segments_give_readings_or_a_packet_error(segment):
    _check(segment)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_segments_give_readings_or_a_packet_error(segment):
    _check(segment)


@pytest.mark.parametrize(
    "body", ["a-b=1," * 1600, ";" * 9900, "," * 9900, "=" * 9900, "a21026-Rtd=1;" * 760]
)
def test_a_worst_case_segment_is_parsed_in_bounded_time(body):
    segment = (HEAD.format(cn="2011", flag="5") + "CP=&&DataTime=20240101120000;" + body)[:9990]
    started = time.thread_time()
    for _ in range(20):
        _check((segment + "&&").encode())
    assert time.thread_time() - started < 10


class _Link:
    """Where answers go: collected (the session writes whole packets)."""

    peer = "fuzz"

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(near_segments().map(encode), st.binary(max_size=200)),
        max_size=10,
    )
)
def test_any_stream_through_the_receive_path_never_raises(chunks):
    session = Session(CONFIG, "fuzz")
    delivered = []
    session.deliver = delivered.extend
    dispatcher = Dispatcher()
    dispatcher.sessions["MN1"] = session
    feed = iter([*chunks, None])
    link = _Link()

    class _Stop:
        def is_set(self) -> bool:
            return False

    pump(lambda: next(feed), link, dispatcher, 1024, 60, _Stop())
    for r in delivered:
        assert r.status in STATUSES
    for packet in link.sent:
        assert packet.startswith(b"##") and packet.endswith(b"\r\n")
