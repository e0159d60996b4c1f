"""Issue 28: a station without the warehouse's key (``ack_keys``) keeps delivering, with a
WARNING from ``config validate``, ``run`` and ``status`` that its acknowledgements are not
authenticated; ``check-transports`` proves by a round trip that the warehouse's acks verify.
Commands run as a technician runs them; real HTTPS (private CA), real Mosquitto, the reference
warehouse."""

from __future__ import annotations

import json
from pathlib import Path

from agent.buffer import Buffer
from agent.protocol.keys import generate_key
from tests.helpers.station import run_agent_cli, write_toml
from warehouse.acks import AckKey
from warehouse.reference import Warehouse, load_station_jwk

NOTICE = "acknowledgements are not authenticated (no ack_keys)"
STATION = "ACK-1"



def _config(tmp_path: Path, transport: dict) -> Path:
    if not (tmp_path / "station.key").exists():
        generate_key(tmp_path)
    data = {
        "station": {"id": STATION},
        "signing": {"key": str(tmp_path / "station.key")},
        "buffer": {"path": str(tmp_path / "buffer.db")},
        "transports": [transport],
    }
    return write_toml(tmp_path / "station.toml", data)


def _https(port: int, ca: Path, **more: object) -> dict:
    return {"type": "https", "name": "wh", "base_url": f"https://127.0.0.1:{port}",
            "tls": {"ca_file": str(ca)}, **more}  # fmt: skip


def _pin(path: Path, *keys: AckKey) -> str:
    path.write_text(json.dumps({"keys": [k.jwk for k in keys]}))
    return str(path)


def test_validate_and_status_warn_of_unsigned_acks_and_not_when_pinned(tmp_path, tls_files):
    config = _config(tmp_path, _https(8443, tls_files.ca))
    result = run_agent_cli("config", "validate", str(config))
    assert result.returncode == 0, result.stderr
    line = next((x for x in result.stderr.splitlines() if NOTICE in x), "none")
    assert line.startswith(f"{config}: warning: transports[0] (wh): ")
    Buffer(tmp_path / "buffer.db").close()
    status = run_agent_cli("status", "--config", str(config))
    assert f"  WARNING: transports[0] (wh): {NOTICE}" in status.stdout, status.stdout
    pinned = _https(8443, tls_files.ca, ack_keys=_pin(tmp_path / "wh.jwk", AckKey.generate()))
    config = _config(tmp_path, pinned)
    result = run_agent_cli("config", "validate", str(config))
    assert result.returncode == 0 and NOTICE not in result.stderr, result.stderr
    assert NOTICE not in run_agent_cli("status", "--config", str(config)).stdout


def test_validate_refuses_an_ack_keys_file_that_is_not_a_key(tmp_path, tls_files):
    (tmp_path / "bad.jwk").write_text('{"kty":"RSA","n":"x","e":"AQAB"}')
    config = _config(tmp_path, _https(8443, tls_files.ca, ack_keys=str(tmp_path / "bad.jwk")))
    result = run_agent_cli("config", "validate", str(config))
    assert result.returncode != 0
    assert f"{config}: transports[0].ack_keys: " in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_check_transports_says_whether_acks_verify(tmp_path, tls_files, mosquitto):
    """HTTPS and MQTT, each a real round trip to the reference warehouse: its signed ack of the
    probe verifies with the pinned key, not with another; nothing is stored."""
    generate_key(tmp_path)
    key = AckKey.generate()
    registered = {STATION: load_station_jwk(tmp_path / "station.jwk")}
    warehouse = Warehouse(tmp_path / "wh.db", registered, key)
    port = warehouse.start_http(cert=tls_files.server_cert, key=tls_files.server_key)
    warehouse.start_mqtt("127.0.0.1", mosquitto.port)
    try:
        for transport in (
            _https(port, tls_files.ca),
            {"type": "mqtt", "name": "wh", "host": "127.0.0.1", "port": mosquitto.port},
        ):
            good = {**transport, "ack_keys": _pin(tmp_path / "good.jwk", key)}
            result = run_agent_cli("check-transports", "--config", str(_config(tmp_path, good)))
            assert result.returncode == 0, result.stdout + result.stderr
            assert f"signed by the warehouse (kid {key.kid}) verified" in result.stdout
            bad = {**transport, "ack_keys": _pin(tmp_path / "bad.jwk", AckKey.generate())}
            result = run_agent_cli("check-transports", "--config", str(_config(tmp_path, bad)))
            assert result.returncode != 0, result.stdout
            assert "FAILED: probe" in result.stdout and "does not verify" in result.stdout
        assert warehouse.count(STATION) == (0, 0) and warehouse.rejected_count() == 0
    finally:
        warehouse.stop()
