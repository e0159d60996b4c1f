"""Fuzzing the SDI-12 answers: any text gives values or an ``Sdi12Error`` saying what was
expected; well-formed answers read back as the sensor wrote them; the CRC catches any changed
character; any bytes on a real pty make ``Bus.command`` return or fail cleanly, in bounded time."""

from __future__ import annotations

import math
import os
import time
import tty

import pytest
import serial
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.sdi12.bus import Bus
from drivers.sdi12.protocol import (
    Sdi12Error,
    check_crc,
    parse_identification,
    parse_start,
    parse_values,
    printable,
    with_crc,
)

pytestmark = pytest.mark.timeout(120)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
_ascii = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


@FUZZ
@given(st.text(max_size=100), st.booleans())
def test_any_data_answer_gives_finite_values_or_a_clear_error(answer, crc):
    try:
        values = parse_values("0", answer, crc)
    except Sdi12Error as exc:
        assert str(exc)
        return
    assert all(math.isfinite(v) for v in values)


@FUZZ
@given(st.text(max_size=40), st.booleans())
def test_any_start_or_identification_answer(answer, concurrent):
    for parse in (
        lambda: parse_start("0", answer, concurrent),
        lambda: parse_identification("0", answer),
    ):
        try:
            parse()
        except Sdi12Error:
            pass


@FUZZ
@given(st.binary(max_size=100))
def test_any_bytes_are_text_or_garbled(data):
    try:
        text = printable(data)
    except Sdi12Error as exc:
        assert "garbled" in str(exc)
        return
    assert all(" " <= ch <= "~" for ch in text)


@FUZZ
@given(st.lists(st.decimals(min_value=-999999, max_value=999999, places=1), max_size=8))
def test_well_formed_values_read_back(values):
    body = "0" + "".join(f"{v:+f}" for v in values)
    got = parse_values("0", with_crc(body), crc=True)
    assert got == [float(v) for v in values]


@FUZZ
@given(_ascii, st.data())
def test_the_crc_catches_any_changed_character(body, data):
    answer = with_crc("0" + body)
    assert check_crc(answer) == "0" + body
    at = data.draw(st.integers(0, len(answer) - 1))
    char = data.draw(st.characters(min_codepoint=32, max_codepoint=126))
    changed = answer[:at] + char + answer[at + 1 :]
    if changed != answer:
        with pytest.raises(Sdi12Error):
            check_crc(changed)


@pytest.fixture(scope="module")
def pty_bus():
    master, slave = os.openpty()
    tty.setraw(slave)
    port = serial.Serial(os.ttyname(slave), 1200, bytesize=7, parity="E", timeout=0)
    bus = Bus(port, first_byte_s=0.05, line_timeout_s=0.1, retries=0)
    yield master, bus
    port.close()
    os.close(master)
    os.close(slave)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=300))
def test_any_bytes_on_the_bus_end_in_an_answer_or_a_clear_error(pty_bus, noise):
    master, bus = pty_bus

    def reply() -> None:
        os.read(master, 64) if _readable(master) else None
        os.write(master, noise)

    started = time.monotonic()
    bus.port.write = _then(bus.port.write, reply)  # the sensor answers right after the command
    try:
        answer = bus.command("0D0!", lambda a: parse_values("0", a, False), data=True)
        assert all(math.isfinite(v) for v in answer)
    except Sdi12Error as exc:
        assert str(exc).startswith("0D0!: ")
    finally:
        del bus.port.write
    assert time.monotonic() - started < 2


def _readable(fd: int) -> bool:
    import select

    return bool(select.select([fd], [], [], 0)[0])


def _then(write, after):
    def wrapped(data: bytes):
        written = write(data)
        after()
        return written

    return wrapped
