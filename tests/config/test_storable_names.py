"""A channel's param or unit travels in every batch: one holding U+0000 (TOML can spell it as
``\\u0000``) is refused by ``config validate`` naming the field, since the warehouse refuses any
batch that holds one (docs/protocol.md, "Text holds no U+0000")."""

from __future__ import annotations

import tomllib

import pytest

from agent.protocol.keys import generate_key
from tests.helpers.station import analyzer_device, run_agent_cli, write_toml


@pytest.mark.parametrize("field", ["param", "unit"])
def test_a_name_holding_nul_is_refused_naming_the_field(tmp_path, field) -> None:
    generate_key(tmp_path)
    device = analyzer_device(502)
    device["channels"][1][field] = "XY\x00Z"
    data = {
        "station": {"id": "S-1"},
        "signing": {"key": str(tmp_path / "station.key")},
        "buffer": {"path": str(tmp_path / "buffer.db")},
        "devices": [device],
        "transports": [{"type": "https", "base_url": "https://wh.example"}],
    }
    path = write_toml(tmp_path / "station.toml", data)
    assert tomllib.loads(path.read_text())["devices"][0]["channels"][1][field] == "XY\x00Z"
    result = run_agent_cli("config", "validate", str(path))
    assert result.returncode != 0
    assert f"devices[0].channels[1].{field}" in result.stderr or (
        f"channels.1.{field}" in result.stderr
    ), result.stderr
    assert "U+0000" in result.stderr and "Traceback" not in result.stderr, result.stderr
    data["devices"][0]["channels"][1][field] = "XYZ"  # the same file without it is fine
    assert run_agent_cli("config", "validate", str(write_toml(path, data))).returncode == 0
