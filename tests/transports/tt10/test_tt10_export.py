"""``station-agent tt10 export`` writes the same bytes the transport delivered; the shipped
example config validates and names every TT10 option; config mistakes are named precisely."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from agent.buffer import Buffer
from agent.cli.main import main
from agent.config.model import load_config
from agent.runtime.preflight import load_checked
from agent.transports.tt10.config import Tt10TransportConfig, options_markdown
from agent.transports.tt10.transport import Tt10Transport
from core.errors import ConfigError
from simulators.tt10_servers import FtpReceiver
from tests.helpers.station import write_toml
from tests.helpers.tt10 import T0, FixedClock, store, tt10_config

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "config" / "tt10.example.toml"


def _station_toml(tmp_path: Path, transport: dict) -> Path:
    data = {
        "station": {"id": "KT01"},
        "signing": {"key": str(tmp_path / "station.key")},
        "buffer": {"path": str(tmp_path / "buffer.db")},
        "devices": [
            {
                "name": "stack",
                "driver": "modbus_tcp",
                "host": "127.0.0.1",
                "channels": [
                    {"param": "Dust", "unit": "mg/Nm3", "register": 0},
                    {"param": "SO2", "unit": "mg/Nm3", "register": 2},
                ],
            }
        ],
        "transports": [transport],
    }
    return write_toml(tmp_path / "station.toml", data)


def _as_toml_dict(config: Tt10TransportConfig) -> dict:
    data = config.model_dump(mode="json", exclude_none=True)
    data["password"] = "secret"
    data["parameters"] = [{k: v for k, v in p.items() if v is not None} for p in data["parameters"]]
    return data


def test_export_writes_the_bytes_the_transport_delivered(tmp_path: Path, capsys) -> None:
    ftp = FtpReceiver(tmp_path / "ftp-root").start()
    config = tt10_config(ftp.port)
    buffer = Buffer(tmp_path / "buffer.db")
    store(buffer, range(6))
    buffer.close()
    transport = Tt10Transport(config, tmp_path / "buffer.db", FixedClock(T0 + 6 * 300_000 + 60_000))
    try:
        assert transport.run_once() == 6
    finally:
        transport.stop()
        ftp.stop()
    path = _station_toml(tmp_path, _as_toml_dict(config))
    out = tmp_path / "export"
    # T0 is 2026-05-29 03:30 in Vietnam; a time without offset is Vietnam time
    code = main(
        ["tt10", "export", "--config", str(path), "--from", "2026-05-29T03:30"]
        + ["--to", "2026-05-29T04:00", "--out", str(out)]
    )
    assert code == 0
    assert "wrote 6 file(s)" in capsys.readouterr().out
    exported = {
        "/" + p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()
    }
    assert exported == ftp.files()
    part = tmp_path / "part"
    assert (
        main(
            ["tt10", "export", "--config", str(path), "--from", "2026-05-28T20:40:00Z"]
            + ["--to", "2026-05-28T20:50:00+00:00", "--out", str(part)]
        )
        == 0
    )
    assert sorted(p.name for p in part.rglob("*.txt")) == [
        "HN_NMX_KT01_20260529034500.txt",
        "HN_NMX_KT01_20260529035000.txt",
    ]


def test_export_refuses_a_bad_time_with_the_expected_form(tmp_path: Path, capsys) -> None:
    path = _station_toml(tmp_path, _as_toml_dict(tt10_config(21)))
    code = main(
        ["tt10", "export", "--config", str(path), "--from", "yesterday", "--to", "now"]
        + ["--out", str(tmp_path)]
    )
    assert code == 1
    assert "--from 'yesterday': expected an ISO time" in capsys.readouterr().err


def test_example_config_validates_and_shows_every_tt10_option(monkeypatch) -> None:
    monkeypatch.setenv("STATION_AGENT_TT10_PASSWORD", "x")
    config = load_config(EXAMPLE)
    assert [t.type for t in config.transports] == ["https", "tt10"]
    text = EXAMPLE.read_text()
    for name in Tt10TransportConfig.model_fields:
        pattern = r"\[\[transports.parameters\]\]" if name == "parameters" else rf"{name} = "
        assert re.search(rf"^\s*#?\s*{pattern}", text, re.M), f"{name} missing from the example"
    data = tomllib.loads(text)
    assert data["transports"][1]["protocol"] == "ftps"


def test_docs_list_every_option_as_the_config_model_says() -> None:
    assert options_markdown() in (ROOT / "docs" / "tt10.md").read_text()


def test_a_parameter_naming_an_unknown_channel_is_refused(tmp_path: Path) -> None:
    transport = _as_toml_dict(tt10_config(21))
    transport["parameters"][1]["param"] = "NOx"
    with pytest.raises(ConfigError, match=r"parameters\[1\]: device 'stack' has no channel 'NOx'"):
        load_config(_station_toml(tmp_path, transport))


def test_a_missing_known_hosts_file_is_refused(tmp_path: Path) -> None:
    transport = _as_toml_dict(tt10_config(22))
    transport |= {"protocol": "sftp", "known_hosts": str(tmp_path / "nowhere")}
    expected = r"transports\[0\]\.known_hosts: .*nowhere: file not found"
    with pytest.raises(ConfigError, match=expected):
        load_checked(_station_toml(tmp_path, transport))
