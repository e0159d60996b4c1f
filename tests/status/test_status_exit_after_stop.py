"""``status`` of a real agent process over a real broker: a device in FAULT is exit 5 (a device
only partly failing is not), and a clean stop is not reported as the transport failing."""

from __future__ import annotations

import json
import signal
import socket
import subprocess

from tests.helpers.agent_process import AgentProcess, write_config
from tests.helpers.station import analyzer_device, run_agent_cli, wait_for
from warehouse.reference import Warehouse, load_station_jwk


def _status(config, *extra: str) -> subprocess.CompletedProcess:
    return run_agent_cli("status", "--config", str(config), *extra, timeout=60)


def _closed_port() -> int:
    """A loopback port nobody listens on (the device that does not answer)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _device(status: dict, name: str) -> dict:
    return next(d for d in status["devices"] if d["name"] == name)


def test_status_exits_5_for_a_device_in_fault_and_a_clean_stop_is_no_outage(
    tmp_path, station_id, station_key, analyzer, mosquitto
):
    warehouse = Warehouse(
        tmp_path / "warehouse.db",
        {station_id: load_station_jwk(station_key[0].parent / "station.jwk")},
    )
    warehouse.start_mqtt("127.0.0.1", mosquitto.port)
    dead = analyzer_device(_closed_port(), name="dead-analyzer", poll=0.5)
    data = {
        "station": {"id": station_id},
        "signing": {"key": str(station_key[0])},
        "buffer": {"path": str(tmp_path / "buffer.db"), "seal_interval_s": 0.5},
        "devices": [analyzer_device(analyzer.port, poll=0.5), dead],
        "transports": [
            {"type": "mqtt", "host": "127.0.0.1", "port": mosquitto.port, "allow_insecure": True}
        ],
    }
    config = write_config(tmp_path / "agent.toml", data)
    agent = AgentProcess(config, tmp_path / "agent.log")
    try:
        agent.wait_log("event=agent_started")
        faulty = wait_for(
            lambda: (
                (r := _status(config, "--json")).stdout
                and _device(json.loads(r.stdout), "dead-analyzer")["state"] == "FAULT"
                and json.loads(r.stdout)["transports"][0]["last_acked_seq"]
                and r
            ),
            30,
            "the dead device in FAULT, the transport delivering",
        )
        assert faulty.returncode == 5, faulty.stdout
        assert _device(json.loads(faulty.stdout), "stack-analyzer")["state"] == "ok"
        text = _status(config)
        assert text.returncode == 5 and "FAULT" in text.stdout, text.stdout

        # The dead device leaves the configuration: healthy again, exit 0.
        data["devices"] = data["devices"][:1]
        write_config(tmp_path / "agent.toml", data)
        agent.signal(signal.SIGHUP)
        agent.wait_log("event=config_reloaded")
        healthy = wait_for(
            lambda: (r := _status(config)).returncode == 0 and r, 30, "exit 0 without the device"
        )
        assert "FAILING" not in healthy.stdout

        agent.signal(signal.SIGTERM)
        assert agent.wait() == 0, agent.text()[-2000:]
    finally:
        agent.kill()
        warehouse.stop()
    stopped = _status(config, "--json")
    assert stopped.returncode == 3, stopped.stdout + stopped.stderr
    mqtt = json.loads(stopped.stdout)["agent"]["transports"]["mqtt"]
    assert mqtt["failing_since"] is None, mqtt  # the stop is ours, not an outage
    assert mqtt["last_error"] is None, mqtt
    assert "FAILING" not in _status(config).stdout
