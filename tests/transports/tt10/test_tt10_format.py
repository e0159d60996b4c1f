"""TT10 files byte for byte: data-driven cases (agent/transports/tt10/testcases/<case>/), each
run under several system time zones, checked against the expected bytes and by a reader written
here (zoneinfo for Vietnam time, statistics for the mean) that does not use the code under test."""

from __future__ import annotations

import csv
import os
import time
import tomllib
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agent.transports.tt10.config import Tt10TransportConfig
from agent.transports.tt10.fileformat import FileFormat, build_file, periods_with_readings
from core.reading import Reading
from tests.helpers.tt10 import read_and_check

CASES = Path(__file__).resolve().parents[3] / "agent" / "transports" / "tt10" / "testcases"
SYSTEM_ZONES = ["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham", "Europe/Berlin"]


@pytest.fixture(params=SYSTEM_ZONES)
def system_tz(request):
    """Run with the process's local time zone set to another zone (DST ones included)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield request.param
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def _case_format(case: Path) -> tuple[Tt10TransportConfig, FileFormat]:
    data = tomllib.loads((case / "case.toml").read_text())
    data = {"type": "tt10", "protocol": "ftp", "host": "h", "username": "u", **data}
    config = Tt10TransportConfig.model_validate(data)
    return config, config.file_format()


def _ms(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return round(dt.timestamp() * 1000)


def _readings(case: Path) -> list[Reading]:
    with (case / "readings.csv").open(newline="") as f:
        return [
            Reading(
                r["device"],
                r["param"],
                "",
                _ms(r["time_utc"]),
                float(r["value"]) if r["value"] else None,
                r["status"],
            )
            for r in csv.DictReader(f)
        ]


def _built(fmt: FileFormat, readings: list[Reading]) -> dict[str, bytes]:
    files = [build_file(fmt, p, readings) for p in periods_with_readings(fmt, readings)]
    return {f.path.lstrip("/"): f.data for f in files}


def _expected(case: Path) -> dict[str, bytes]:
    root = case / "expected"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# --- the independent reader ---------------------------------------------------------------


# --- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_case_gives_the_expected_files_byte_for_byte(case: str, system_tz: str) -> None:
    config, fmt = _case_format(CASES / case)
    readings = _readings(CASES / case)
    built = _built(fmt, readings)
    expected = _expected(CASES / case)
    assert sorted(built) == sorted(expected)
    for path, data in built.items():
        assert data == expected[path], f"{case}/{path}"
        read_and_check(config, path, data, readings)


def test_same_period_rebuilds_to_the_same_bytes_whatever_the_order_of_other_periods() -> None:
    config, fmt = _case_format(CASES / "basic_mean")
    readings = _readings(CASES / "basic_mean")
    once = _built(fmt, readings)
    noise = [Reading("stack", "Dust", "", r.time_ms + 86_400_000, 1.0) for r in readings]
    assert _built(fmt, noise + readings + noise[::-1]).items() >= once.items()


_reading = st.builds(
    Reading,
    device=st.just("d"),
    param=st.sampled_from(["a", "b"]),
    unit=st.just(""),
    time_ms=st.integers(1_767_200_000_000, 1_767_200_000_000 + 3 * 3_600_000),
    value=st.none() | st.floats(-1e6, 1e6, allow_nan=False),
    status=st.sampled_from(["00", "01", "02"]),
)


@settings(max_examples=150, deadline=None)
@given(
    readings=st.lists(_reading, max_size=40),
    interval=st.sampled_from([60, 300, 3600]),
    value=st.sampled_from(["mean", "last"]),
    period_time=st.sampled_from(["end", "start"]),
)
def test_any_readings_give_files_the_independent_reader_agrees_with(
    readings, interval, value, period_time
) -> None:
    config = Tt10TransportConfig.model_validate(
        {
            "type": "tt10",
            "protocol": "ftp",
            "host": "h",
            "username": "u",
            "province": "P",
            "facility": "F",
            "station": "S",
            "interval_s": interval,
            "value": value,
            "period_time": period_time,
            "parameters": [
                {"device": "d", "param": "a", "unit": "mg/Nm3"},
                {"device": "d", "param": "b", "code": "B", "unit": "%", "decimals": 3},
            ],
        }
    )
    fmt = config.file_format()
    for path, data in _built(fmt, readings).items():
        read_and_check(config, path, data, readings)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"interval_s": 420}, "must divide a day"),
        ({"file_name": "{station}_{when}.txt"}, "unknown field"),
        ({"file_name": "a/{station}.txt"}, "plain name"),
        ({"remote_dir": "{station"}, "remote_dir template"),
        ({"parameters": [{"device": "d", "param": "a", "unit": "µg/m3"}]}, "cannot be written"),
        ({"parameters": [{"device": "d", "param": "a\tb", "unit": "u"}]}, "TAB"),
        (
            {"parameters": [{"device": "d", "param": "a", "unit": "u"}] * 2},
            "codes must be unique",
        ),
        ({"protocol": "sftp"}, "known_hosts"),
    ],
)
def test_bad_format_settings_are_refused_with_the_reason(change: dict, message: str) -> None:
    data = {
        "type": "tt10",
        "protocol": "ftp",
        "host": "h",
        "username": "u",
        "province": "P",
        "facility": "F",
        "station": "S",
        "parameters": [{"device": "d", "param": "a", "unit": "u"}],
        **change,
    }
    with pytest.raises(ValidationError, match=message):
        Tt10TransportConfig.model_validate(data)
