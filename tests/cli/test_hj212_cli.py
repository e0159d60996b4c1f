"""``station-agent hj212 decode``: good packets decoded, bad ones explained, exit status."""

from __future__ import annotations

import pytest

from agent.cli.main import main
from tests.helpers.station import write_toml

WORKED = (
    "QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;"
    "Flag=5;CP=&&RtdInterval=30&&"
)
DATA = (
    "QN=20240101120000001;ST=22;CN=2011;PW=123456;MN=88888880000001;Flag=5;"
    "CP=&&DataTime=20240101120000;a21026-Rtd=12.5,a21026-Flag=C;a99999-Rtd=1&&"
)


def test_the_worked_example_decodes(capsys):
    assert main(["hj212", "decode", f"##0101{WORKED}1C80\\r\\n"]) == 0
    out = capsys.readouterr().out
    assert "CRC 1C80 (good" in out
    assert "set real-time data interval" in out
    assert "HJ 212-2017, answer wanted" in out
    assert "100000" not in out  # the password is not shown


@pytest.mark.parametrize(
    ("packet", "says"),
    [
        (f"##0101{WORKED}0759", "CRC-16/MODBUS of the segment"),
        (f"##0101{WORKED}1C81", "bad_crc: CRC 1C81 received, 1C80 computed"),
        (f"##0100{WORKED}1C80", "101 characters of data segment (the length field says '0100')"),
        (f"##01x1{WORKED}1C80", "bad_length_field"),
        (f"##0101{WORKED}1C8Z", "bad_crc_field"),
    ],
)
def test_a_bad_packet_is_explained(capsys, packet, says):
    assert main(["hj212", "decode", packet]) == 1
    assert says in capsys.readouterr().out


def test_a_bare_segment_gets_its_crc_and_frame(capsys):
    assert main(["hj212", "decode", WORKED]) == 0
    assert "##0101" + WORKED + "1C80" in capsys.readouterr().out


def test_a_log_line_prefix_is_skipped(capsys):
    assert main(["hj212", "decode", f"2024-01-01 12:00:00 RX: ##0101{WORKED}1C80"]) == 0
    assert "skipped 24 character(s)" in capsys.readouterr().out


def test_with_a_config_the_readings_are_shown(tmp_path, capsys):
    config = write_toml(
        tmp_path / "agent.toml",
        {
            "station": {"id": "S-1"},
            "signing": {"key": "station.key"},
            "buffer": {"path": "buffer.db"},
            "devices": [
                {
                    "name": "cems",
                    "driver": "hj212",
                    "port": 9000,
                    "mn": "88888880000001",
                    "password": "123456",
                    "channels": [{"code": "a21026", "param": "SO2", "unit": "mg/m3"}],
                }
            ],
            "transports": [{"type": "https", "base_url": "https://warehouse.invalid"}],
        },
    )
    assert main(["hj212", "decode", "--config", str(config), DATA]) == 0
    out = capsys.readouterr().out
    assert "SO2 = 12.5 mg/m3 at 2024-01-01T05:00:00.000Z status 01  (HJ 212 flag C)" in out
    assert "codes no channel takes: a99999" in out
    bad = DATA.replace("DataTime=20240101120000", "DataTime=2024")
    assert main(["hj212", "decode", "--config", str(config), bad]) == 1
    assert "BAD: as data: DataTime='2024'" in capsys.readouterr().out
