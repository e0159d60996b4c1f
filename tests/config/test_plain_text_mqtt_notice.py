"""Issue 27, item 7: an MQTT transport without TLS gets a notice from ``config validate`` and
from ``check-transports`` (allowed, never silent); one with TLS gets none. Real Mosquitto for
the check; the commands run as a technician runs them."""

from __future__ import annotations

from pathlib import Path

from agent.protocol.keys import generate_key
from simulators.certs import make_tls_files
from tests.helpers.station import run_agent_cli, write_toml

NOTICE = "plain-text MQTT (no [transports.tls])"



def _config(tmp_path: Path, mqtt: dict) -> Path:
    data = {
        "station": {"id": "S-1"},
        "signing": {"key": str(tmp_path / "station.key")},
        "buffer": {"path": str(tmp_path / "buffer.db")},
        "transports": [{"type": "mqtt", "name": "broker", "host": "127.0.0.1", **mqtt}],
    }
    if not (tmp_path / "station.key").exists():
        generate_key(tmp_path)
    return write_toml(tmp_path / "station.toml", data)


def test_validate_gives_plain_text_mqtt_a_notice_naming_the_transport(tmp_path) -> None:
    result = run_agent_cli("config", "validate", str(_config(tmp_path, {"port": 1883})))
    assert result.returncode == 0, result.stderr
    line = next((x for x in result.stderr.splitlines() if NOTICE in x), "none")
    assert line.startswith(f"{tmp_path / 'station.toml'}: warning: transports[0] (broker): ")


def test_validate_says_nothing_of_mqtt_over_tls(tmp_path) -> None:
    ca = make_tls_files(tmp_path / "tls").ca  # validate loads it, as run does
    config = _config(tmp_path, {"port": 8883, "tls": {"ca_file": str(ca)}})
    result = run_agent_cli("config", "validate", str(config))
    assert result.returncode == 0, result.stderr
    assert NOTICE not in result.stderr


def test_check_transports_notes_plain_text_mqtt_and_still_passes(tmp_path, mosquitto) -> None:
    config = _config(tmp_path, {"port": mosquitto.port})
    result = run_agent_cli("check-transports", "--config", str(config), "--timeout", "5")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "broker (mqtt): ok"
    assert f"  note: {NOTICE}" in "\n".join(lines)
