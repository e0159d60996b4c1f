"""Fuzzing the serial line driver: no input may make it raise, hang or invent a value."""

from __future__ import annotations

import math
import os
import select
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import DeviceError
from drivers.serial_line.driver import SerialLineConfig, SerialLineDriver, decode_escapes

pytestmark = pytest.mark.timeout(60)

CHANNELS = [
    {"param": "PM10", "group": "pm10", "scale": 0.1},
    {"param": "PM2.5", "group": "pm25"},
]
PATTERNS = {
    "none": r"PM10=(?P<pm10>[^,]*),PM2\.5=(?P<pm25>[^,*]*)(?:,ST=(?P<st>\w))?",
    "xor8": r"^(?P<checked>PM10=(?P<pm10>[^,]*),PM2\.5=(?P<pm25>[^,]*),ST=(?P<st>\w))"
    r"\*(?P<checksum>[0-9A-Fa-f]{2})$",
    "sum8": r"PM10=(?P<pm10>[^,]*),PM2\.5=(?P<pm25>[^,]*),ST=(?P<st>\w)\*(?P<checksum>\w+)",
}


def _driver(checksum: str, port: str = "/dev/null", **extra: object) -> SerialLineDriver:
    return SerialLineDriver(
        SerialLineConfig.model_validate(
            {
                "name": "fuzz",
                "driver": "serial_line",
                "port": port,
                "request": r"READ\r\n",
                "pattern": PATTERNS[checksum],
                "checksum": checksum,
                "status": {"group": "st", "map": {"0": "00", "C": "01"}},
                "channels": CHANNELS,
                **extra,
            }
        )
    )


DRIVERS = {name: _driver(name) for name in PATTERNS}

# Bytes that look like an answer often enough to reach the number and checksum code.
_near_lines = st.lists(
    st.sampled_from(
        [b"PM10=", b",PM2.5=", b",ST=", b"*", b"0", b"C", b"12.5", b"-", b"e9", b"nan", b"inf",
         b"1e400", b"\xff", b"\x00", b"2B", b"zz", b",", b" ", b"1_0"]
    ),
    max_size=12,
).map(b"".join)  # fmt: skip


def _check(readings, raw: bytes) -> None:
    assert [r.param for r in readings] == ["PM10", "PM2.5"]
    for reading in readings:
        assert reading.status in ("00", "01", "02")
        if reading.value is None:
            assert reading.status == "02" and reading.error, (raw, reading)
        else:
            assert math.isfinite(reading.value), (raw, reading)
        if reading.error is None:
            assert reading.value is not None, (raw, reading)


@settings(max_examples=400, deadline=None)
@given(
    raw=st.one_of(st.binary(max_size=300), _near_lines),
    checksum=st.sampled_from(sorted(PATTERNS)),
    complete=st.booleans(),
)
def test_parser_turns_any_bytes_into_readings_or_channel_errors(raw, checksum, complete):
    _check(DRIVERS[checksum].parse(raw, 0, complete=complete), raw)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_escape_decoder_decodes_or_says_why(text):
    try:
        data = decode_escapes(text, "utf-8")
    except ValueError as exc:
        assert "escape" in str(exc) or "cannot be written" in str(exc)
    else:
        assert isinstance(data, bytes)
        if "\\" not in text:
            assert data == text.encode("utf-8")


@pytest.fixture(scope="module")
def pty_port(tmp_path_factory) -> Iterator[tuple[int, Path]]:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    link = tmp_path_factory.mktemp("fuzz") / "ttyFUZZ"
    link.symlink_to(os.ttyname(slave))
    yield master, link
    os.close(master)
    os.close(slave)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(answer=st.binary(max_size=6000))
def test_any_answer_on_a_real_pty_is_read_within_the_timeout(pty_port, answer):
    master, link = pty_port
    driver = _driver("xor8", port=str(link), timeout_s=0.05, retries=0)

    def answer_request() -> None:
        received = b""
        deadline = time.monotonic() + 1
        while b"READ\r\n" not in received and time.monotonic() < deadline:
            if select.select([master], [], [], 0.05)[0]:
                received += os.read(master, 64)
        for start in range(0, len(answer), 1024):
            try:
                os.write(master, answer[start : start + 1024])
            except BlockingIOError:
                return  # the pty is full: the rest is lost, as on a real line

    responder = threading.Thread(target=answer_request, daemon=True)
    responder.start()
    started = time.monotonic()
    try:
        _check(driver.read(0), answer)
    except DeviceError as exc:
        assert "no answer in 0.05 s" in str(exc) and answer == b""
    finally:
        driver.close()
    assert time.monotonic() - started < 0.5
    responder.join(2)
