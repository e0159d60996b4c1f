"""``station-agent files decode``: a file's values, its problems named by line, the readings a
configured device would store, the exit status."""

from __future__ import annotations

from agent.cli.main import main
from tests.helpers.station import write_toml

TT10 = (
    "SO2\t100.50\tmg/Nm3\t20240101120500\t00\r\n"
    "NOx\t5\tmg/Nm3\t20240101120500\t01\r\n"
    "Dust\t1\tmg/Nm3\t2024\t00\r\n"
)


def test_a_tt10_file_is_shown_value_by_value_with_its_problems(tmp_path, capsys):
    path = tmp_path / "HN_NMX_KT01_20240101120500.txt"
    path.write_text(TT10, newline="")
    assert main(["files", "decode", str(path)]) == 1  # one bad line
    out = capsys.readouterr().out
    assert "line 1: SO2 = 100.5 mg/Nm3 at 2024-01-01T05:05:00.000Z status 00" in out
    assert "line 2: NOx = 5 mg/Nm3 at 2024-01-01T05:05:00.000Z status 01" in out
    assert "HN_NMX_KT01_20240101120500.txt:3: Dust: time '2024': expected yyyyMMddHHmmss" in out


def test_a_good_toa5_file_exits_0_and_names_the_logger(tmp_path, capsys):
    path = tmp_path / "met.dat"
    path.write_bytes(
        b'"TOA5","MET1","CR1000X","12345","OS","prog","1","Min10"\r\n'
        b'"TIMESTAMP","RH"\r\n"TS","%"\r\n"","Smp"\r\n"2024-01-01 12:00:00",80.5\r\n'
    )
    assert main(["files", "decode", str(path), "--timezone", "UTC"]) == 0
    out = capsys.readouterr().out
    assert "model 'CR1000X', serial '12345'" in out
    assert "line 5: RH = 80.5 % at 2024-01-01T12:00:00.000Z status 00" in out


def test_not_a_text_file_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "x.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff")
    assert main(["files", "decode", str(path)]) == 1
    out = capsys.readouterr().out
    assert "x.txt: tt10: cannot be read: x.txt:1: not UTF-8 text (byte 0)" in out


def test_with_a_config_the_readings_of_the_device_are_shown(tmp_path, capsys):
    config = write_toml(
        tmp_path / "agent.toml",
        {
            "station": {"id": "S-1"},
            "signing": {"key": "station.key"},
            "buffer": {"path": "buffer.db"},
            "devices": [
                {
                    "name": "logger",
                    "driver": "files",
                    "format": "tt10",
                    "folder": "in",
                    "channels": [{"code": "SO2", "param": "SO2_stack", "unit": "mg/Nm3"}],
                }
            ],
            "transports": [{"type": "https", "base_url": "https://warehouse.invalid"}],
        },
    )
    path = tmp_path / "KT.txt"
    path.write_text(TT10, newline="")
    assert main(["files", "decode", str(path), "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "device 'logger' would store 1 reading(s)" in out
    assert "SO2_stack = 100.5 mg/Nm3 at 2024-01-01T05:05:00.000Z 00" in out
    assert "codes no channel takes: NOx" in out
