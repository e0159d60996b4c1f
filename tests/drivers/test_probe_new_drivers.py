"""``station-agent probe`` on the files and sdi12 drivers: what the newest file or each sensor
yields, with the raw source next to each value."""

from __future__ import annotations

from agent.cli.main import main
from simulators.sdi12 import Sdi12BusSimulator
from tests.helpers.station import write_toml


def _config(tmp_path, device: dict):
    return write_toml(
        tmp_path / "agent.toml",
        {
            "station": {"id": "S-1"},
            "signing": {"key": "station.key"},
            "buffer": {"path": "buffer.db"},
            "devices": [device],
            "transports": [{"type": "https", "base_url": "https://warehouse.invalid"}],
        },
    )


def test_probe_shows_what_the_newest_file_yields(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "KT_20240101120000.txt").write_bytes(b"SO2\t1.00\tmg/Nm3\t20240101120000\t00\r\n")
    (folder / "KT_20240101120500.txt").write_bytes(
        b"SO2\t2.50\tmg/Nm3\t20240101120500\t01\r\nCO\t9\tmg/Nm3\t20240101120500\t00\r\n"
    )
    config = _config(
        tmp_path,
        {
            "name": "logger",
            "driver": "files",
            "format": "tt10",
            "folder": "in",
            "channels": [
                {"code": "SO2", "param": "SO2", "unit": "mg/Nm3"},
                {"code": "Dust", "param": "Dust", "unit": "mg/Nm3"},
            ],
        },
    )
    assert main(["probe", "--config", str(config)]) == 1  # Dust is not in the file
    out = capsys.readouterr().out
    assert "KT_20240101120500.txt: " in out
    assert "codes in the file, not configured: CO" in out
    assert "SO2      KT_20240101120500.txt SO2  2.5    mg/Nm3  01" in out
    assert "KT_20240101120500.txt: no 'Dust'" in out
    assert not (tmp_path / "files-ledger.db").exists(), "probe recorded something"


def test_probe_identifies_each_sdi12_sensor(tmp_path, capsys):
    sim = {"sensors": [{"address": "3", "values": [0.75], "vendor": "ACME", "model": "LVL100"}]}
    with Sdi12BusSimulator(tmp_path / "tty", sim):
        config = _config(
            tmp_path,
            {
                "name": "bus1",
                "driver": "sdi12",
                "port": str(tmp_path / "tty"),
                "first_byte_s": 0.5,
                "sensors": [
                    {"address": "3", "channels": [{"value": 1, "param": "Level", "unit": "m"}]}
                ],
            },
        )
        assert main(["probe", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "sensor 3: ACME LVL100 v100 (SDI-12 1.4)" in out
    assert "Level    3D0! 3+0.75  0.75   m     00" in out
