"""Fuzzing the file parsers (TT10 lines, TOA5 headers and rows): no input may make them raise
anything but ``FileFormatError`` (naming the file and line), hang, or invent a value; a well
formed line always reads back as written (the oracle: the generator's own values)."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.files.rows import FileFormatError
from drivers.files.toa5 import parse_toa5
from drivers.files.tt10 import parse_tt10

pytestmark = pytest.mark.timeout(120)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
NAME = "HN_NMX_KT01_20240101120500.txt"
_PROBLEM = re.compile(r"^HN_NMX_KT01_20240101120500\.txt:\d+: .+")

_fields = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\t\x00"), max_size=30)
_times = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31))
_values = st.floats(allow_nan=False, allow_infinity=False, width=32)


def _check(content, data: bytes) -> None:
    for value in content.values:
        assert value.status in ("00", "01", "02")
        assert value.value is None or math.isfinite(value.value)
        assert (value.value is None) == (value.error is not None) or value.status == "02"
        assert 1 <= value.line <= data.count(b"\n") + 1
    for problem in content.problems:
        assert _PROBLEM.match(problem), problem
    assert len(content.problems) <= 50


@FUZZ
@given(st.binary(max_size=2000))
def test_tt10_any_bytes_give_values_or_a_clear_error(data):
    started = time.monotonic()
    try:
        content = parse_tt10(NAME, data)
    except FileFormatError as exc:
        assert _PROBLEM.match(str(exc)), str(exc)
        return
    assert time.monotonic() - started < 1
    _check(content, data)


@FUZZ
@given(st.lists(st.lists(_fields, max_size=7), max_size=20), st.sampled_from(["\r\n", "\n"]))
def test_tt10_any_tab_separated_lines(lines, end):
    data = "".join("\t".join(fields) + end for fields in lines).encode()
    content = parse_tt10(NAME, data)
    _check(content, data)
    assert content.problem_count + len(content.values) == content.lines


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[A-Za-z][A-Za-z0-9_.]{0,15}", fullmatch=True),
            _values,
            st.sampled_from(["mg/Nm3", "oC", "%", ""]),
            _times,
            st.sampled_from(["00", "01", "02"]),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_tt10_well_formed_lines_read_back_as_written(rows):
    text = "".join(f"{c}\t{v!r}\t{u}\t{t:%Y%m%d%H%M%S}\t{s}\r\n" for c, v, u, t, s in rows)
    content = parse_tt10(NAME, text.encode())
    assert content.problems == []
    got = [(v.code, v.value, v.unit, v.time_ms, v.status) for v in content.values]
    want = [
        (c, v, u, int((t - timedelta(hours=7)).replace(tzinfo=UTC).timestamp()) * 1000, s)
        for c, v, u, t, s in rows
    ]
    assert got == want


_HEADER = (
    '"TOA5","MET1","CR1000X","1","OS","CPU:x.CR1X","1","Min10"\r\n'
    '"TIMESTAMP","RECORD","AirTC_Avg","RH"\r\n"TS","RN","Deg C","%"\r\n"","","Avg","Smp"\r\n'
)


@FUZZ
@given(st.binary(max_size=2000))
def test_toa5_any_bytes_give_values_or_a_clear_error(data):
    try:
        content = parse_toa5("met.dat", data, ZONE)
    except FileFormatError as exc:
        assert re.match(r"^met\.dat:\d+: .+", str(exc)), str(exc)
        return
    for problem in content.problems:
        assert problem.startswith("met.dat:")


@FUZZ
@given(st.lists(st.lists(_fields, max_size=6), min_size=0, max_size=8))
def test_toa5_any_header_lines(header):
    data = "".join(",".join(f'"{f}"' for f in fields) + "\r\n" for fields in header).encode()
    try:
        parse_toa5("met.dat", data + b'"2024-01-01 00:00:00",1,2,3\r\n', ZONE)
    except FileFormatError as exc:
        assert re.match(r"^met\.dat:[1-5]: .+", str(exc)), str(exc)


@FUZZ
@given(st.lists(st.lists(st.one_of(_fields, _values.map(repr)), max_size=6), max_size=20))
def test_toa5_any_rows_after_a_good_header(rows):
    body = "".join(",".join(rows_) + "\r\n" for rows_ in rows)
    data = (_HEADER + body).encode()
    content = parse_toa5("met.dat", data, ZONE)
    _check_toa5(content)


def _check_toa5(content) -> None:
    for value in content.values:
        assert value.code in ("RECORD", "AirTC_Avg", "RH")
        assert value.value is None or math.isfinite(value.value)
        assert value.status in ("00", "02")


@FUZZ
@given(st.lists(st.tuples(_times, _values, _values), min_size=1, max_size=20))
def test_toa5_well_formed_rows_read_back_as_written(rows):
    body = "".join(
        f'"{t:%Y-%m-%d %H:%M:%S}",{i},{a!r},{b!r}\r\n' for i, (t, a, b) in enumerate(rows)
    )
    content = parse_toa5("met.dat", (_HEADER + body).encode(), ZONE)
    assert content.problems == []
    got = [(v.code, v.value, v.time_ms) for v in content.values]
    want = []
    for i, (t, a, b) in enumerate(rows):
        ms = int(t.replace(tzinfo=ZONE).timestamp()) * 1000
        want += [("RECORD", float(i), ms), ("AirTC_Avg", a, ms), ("RH", b, ms)]
    assert got == want


def test_a_huge_file_of_long_lines_is_read_in_bounded_time():
    line = b"SO2\t" + b"9" * 10_000 + b"\tmg/Nm3\t20240101120000\t00\r\n"
    started = time.monotonic()
    content = parse_tt10(NAME, line * 400)  # 4 MB: the default max_file_bytes
    assert time.monotonic() - started < 5
    assert content.values == [] and content.problem_count == 400
    assert content.problems[0] == f"{NAME}:1: line longer than 4096 characters"
