"""``status`` tells the truth about a real agent process over a real broker: failing and
recovered, RFC 3339 times, the backlog's age, exit codes, and no secrets needed."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from datetime import datetime

from tests.helpers.agent_process import AgentProcess, write_config
from tests.helpers.station import ROOT, agent_env, analyzer_device, wait_for
from warehouse.reference import Warehouse, load_station_jwk

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
SECRET_ENV = "STATION_AGENT_TEST_MQTT_PASSWORD"


def _status(config, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "status", "--config", str(config), *extra],
        env=env or agent_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _json(config) -> dict:
    result = _status(config, "--json")
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


def _times(value, key: str = "") -> list[tuple[str, object]]:
    """Every (key, value) whose key names a time, however deep."""
    if isinstance(value, dict):
        return [kv for k, v in value.items() for kv in _times(v, k)]
    if isinstance(value, list):
        return [kv for v in value for kv in _times(v, key)]
    named = key.endswith(("_at", "_since", "_good")) or key in ("failing_since",)
    return [(key, value)] if named else []


def _check_times(data: dict) -> None:
    times = _times(data)
    assert times, "some times to check"
    for key, value in times:
        if value is None:
            continue
        assert isinstance(value, str) and RFC3339.match(value), (key, value)
        datetime.fromisoformat(value.replace("Z", "+00:00"))  # an independent parse


def test_status_follows_a_broker_outage_and_needs_no_secrets(
    tmp_path, station_id, station_key, analyzer, mosquitto
):
    warehouse = Warehouse(
        tmp_path / "warehouse.db",
        {station_id: load_station_jwk(station_key[0].parent / "station.jwk")},
    )
    warehouse.start_mqtt("127.0.0.1", mosquitto.port)
    data = {
        "station": {"id": station_id},
        "signing": {"key": str(station_key[0])},
        "buffer": {"path": str(tmp_path / "buffer.db"), "seal_interval_s": 0.5},
        "devices": [analyzer_device(analyzer.port)],
        "transports": [
            {
                "type": "mqtt",
                "host": "127.0.0.1",
                "port": mosquitto.port,
                "keepalive_s": 5,
                "ack_timeout_s": 5,
                "backoff_max_s": 2,
                "username": "station",
                "password_env": SECRET_ENV,
                "allow_insecure": True,  # loopback test broker: no TLS
            }
        ],
    }
    config = write_config(tmp_path / "agent.toml", data)
    no_secret = {k: v for k, v in agent_env().items() if k != SECRET_ENV}
    agent = AgentProcess(config, tmp_path / "agent.log", env={SECRET_ENV: "s3cret"})
    try:
        agent.wait_log("event=agent_started")
        wait_for(lambda: _json(config)["transports"][0]["last_acked_seq"], 30, "an ack")
        healthy = _status(config, env=no_secret)  # the technician's shell has no secret
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        assert "FAILING" not in healthy.stdout
        _check_times(_json(config))
        validate = subprocess.run(
            [sys.executable, "-m", "agent.cli", "config", "validate", str(config)],
            env=no_secret,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert validate.returncode == 0, validate.stderr
        assert SECRET_ENV in validate.stderr and "warning" in validate.stderr

        mosquitto.stop()
        failing = wait_for(
            lambda: (s := _json(config))["agent"]["transports"]["mqtt"]["failing_since"] and s,
            60,
            "the outage in status",
        )
        _check_times(failing)
        wait_for(
            lambda: (_json(config)["transports"][0]["oldest_unacked_reading_age_s"] or 0) > 1,
            30,
            "a backlog that ages",
        )
        assert _status(config).returncode == 0, "not failing longer than --fail-after yet"
        late = _status(config, "--fail-after", "0")
        assert late.returncode == 4, late.stdout
        assert "FAILING for" in late.stdout

        mosquitto.start()
        acked = _json(config)["transports"][0]["last_acked_seq"] or 0
        wait_for(
            lambda: (_json(config)["transports"][0]["last_acked_seq"] or 0) > acked + 1,
            60,
            "acknowledgements after the outage",
        )
        recovered = wait_for(
            lambda: (
                (s := _json(config))["agent"]["transports"]["mqtt"]["failing_since"] is None and s
            ),
            30,
            "the error cleared",
        )
        assert recovered["agent"]["transports"]["mqtt"]["last_error"] is None
        assert _status(config, "--fail-after", "0").returncode == 0
    finally:
        agent.signal(signal.SIGTERM)
        agent.wait()
        warehouse.stop()
    stopped = _status(config)
    assert stopped.returncode == 3 and "NOT RUNNING" in stopped.stdout
