"""``station.timezone``: ``status`` shows the technician local times (and UTC beside them)."""

from __future__ import annotations

import pytest

from agent.buffer import Buffer
from agent.config.model import parse_config
from agent.status.report import gather, render
from core.errors import ConfigError
from core.reading import Reading
from tests.helpers.hj212 import hj212_device

AT_MS = 1_795_834_800_000  # 2026-11-28 03:00:00 UTC


@pytest.mark.parametrize(
    ("timezone", "shown"),
    [
        ("Asia/Ho_Chi_Minh", "2026-11-28 10:00:00 +07 (03:00:00 UTC)"),
        ("America/New_York", "2026-11-27 22:00:00 EST (03:00:00 UTC)"),
        ("UTC", "2026-11-28 03:00:00 UTC (03:00:00 UTC)"),
    ],
)
def test_status_shows_times_in_the_station_time_zone(tmp_path, timezone: str, shown: str):
    buf = Buffer(tmp_path / "buffer.db", durability="process")
    buf.store_poll([Reading("stack", "SO2", "mg/Nm3", AT_MS, 1.0)], device="stack", time_ms=AT_MS)
    buf.close()
    config = parse_config(
        {
            "station": {"id": "S-1", "timezone": timezone},
            "signing": {"key": "station.key"},
            "buffer": {"path": str(tmp_path / "buffer.db")},
            "transports": [{"type": "https", "base_url": "https://w.example"}],
        },
        tmp_path / "station-agent.toml",
    )
    text = render(gather(config))
    assert f"stack: ok; last good reading {shown}" in text


def test_an_unknown_time_zone_is_a_clear_config_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        parse_config(
            {
                "station": {"id": "S-1", "timezone": "Asia/Hanoi-Town"},
                "signing": {"key": "k"},
                "buffer": {"path": "b.db"},
                "transports": [{"type": "https", "base_url": "https://w.example"}],
            },
            tmp_path / "x.toml",
        )
    assert "station.timezone: unknown time zone 'Asia/Hanoi-Town'" in str(err.value)


@pytest.mark.parametrize(
    "device",
    [
        {
            "name": "met-logger",
            "driver": "files",
            "format": "toa5",
            "folder": "in",
            "channels": [{"code": "RH", "param": "RH", "unit": "%"}],
        },
        hj212_device(9),
    ],
    ids=["files", "hj212"],
)
def test_a_datalogger_in_an_unknown_time_zone_is_named_the_same_way(tmp_path, device):
    """A datalogger writing local times (files, HJ 212) is checked by the same rule as the
    station: the error names the device's field, the zone, and what was expected."""
    with pytest.raises(ConfigError) as err:
        parse_config(
            {
                "station": {"id": "S-1"},
                "signing": {"key": "k"},
                "buffer": {"path": "b.db"},
                "devices": [{**device, "timezone": "Asia/Hanoi-Town"}],
                "transports": [{"type": "https", "base_url": "https://w.example"}],
            },
            tmp_path / "x.toml",
        )
    assert "devices[0].timezone: unknown time zone 'Asia/Hanoi-Town' (expected an IANA name)" in (
        str(err.value)
    )
