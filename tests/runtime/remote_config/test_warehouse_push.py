"""Issue 32, both halves together: a document the warehouse signs with its own code (the reference
warehouse's ``push_config``, as ``station-warehouse config push``) and serves at
``GET /stations/{id}/config`` is fetched, verified with the key the station pins for
acknowledgements, and applied by a real agent; the ``config`` record in the chain names it."""

from __future__ import annotations

import copy
import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.agent_process import AgentProcess, station_config
from tests.helpers.remote_config import sha256_hex, toml_text, wait_record
from tests.helpers.station import write_toml


@contextmanager
def _station(tmp_path: Path, data: dict, warehouse) -> Iterator[tuple[AgentProcess, dict, Path]]:
    """A real ``station-agent run`` of ``data`` pinning the warehouse's ack key (which signs its
    configuration documents) on its first transport; stopped with SIGTERM, exit code 0."""
    pinned = tmp_path / "warehouse-ack.jwk"
    pinned.write_text(json.dumps(warehouse.ack_key.jwk))
    data["transports"][0]["ack_keys"] = str(pinned)
    path = write_toml(tmp_path / "agent.toml", data)
    agent = AgentProcess(path, tmp_path / "agent.log")
    try:
        agent.wait_log("event=agent_started")
        yield agent, copy.deepcopy(data), path
    finally:
        if agent.proc.poll() is None:
            agent.signal(signal.SIGTERM)
            assert agent.wait() == 0, agent.text()[-3000:]


def _applied(version: int, text: str, warehouse, via: str) -> dict:
    return {
        "version": version,
        "digest": sha256_hex(text),
        "source": "remote",
        "signed_by": warehouse.ack_key.kid,
        "outcome": "applied",
        "reason": f"via {via}",
        "log_level": None,
    }


def test_a_document_the_warehouse_pushes_is_applied_by_the_station(
    tmp_path, station_id, station_key, steady_analyzer, warehouse
):
    data = station_config(
        tmp_path, station_id, station_key[0], steady_analyzer.port, warehouse.start_http()
    )
    data["remote_config"] = {"enabled": True, "interval_s": 1, "probation_s": 4}  # url derived
    jwk = station_key[0].parent / "station.jwk"
    with _station(tmp_path, data, warehouse) as (_agent, new, _path):
        new["buffer"]["seal_interval_s"] = 0.4
        text = toml_text(new, tmp_path)
        first = warehouse.push_config(station_id, text)
        applied = wait_record(
            warehouse, station_id, jwk, lambda b: b["version"] == first.version, "pushed, applied"
        )
        second = warehouse.push_config(station_id, text.replace("0.4", "0.3"))
        again = wait_record(
            warehouse, station_id, jwk, lambda b: b["version"] == second.version, "the next one"
        )
    assert applied == _applied(first.version, text, warehouse, "https")
    assert first.digest == sha256_hex(text)  # the warehouse and the station name the same bytes
    assert again["outcome"] == "applied" and second.version == first.version + 1


def test_a_document_the_warehouse_publishes_on_mqtt_is_applied_by_the_station(
    tmp_path, station_id, station_key, steady_analyzer, warehouse, mosquitto
):
    """The other road end to end: the warehouse's push publishes the document retained on its
    broker (``config push`` with ``[intake.mqtt]``), the station takes it from the retained
    message on its MQTT uplink (no HTTPS at all) and applies it; the ``config`` record comes back
    through the same broker, acknowledged by the warehouse with the key that signed the push."""
    warehouse.start_mqtt("127.0.0.1", mosquitto.port, client_id=f"wh-{station_id}")
    data = station_config(tmp_path, station_id, station_key[0], steady_analyzer.port, 1)
    uplink = {"type": "mqtt", "name": "uplink", "host": "127.0.0.1", "port": mosquitto.port}
    data["transports"] = [{**uplink, "ack": "warehouse"}]
    data["remote_config"] = {"enabled": True, "mqtt": True, "probation_s": 4}
    jwk = station_key[0].parent / "station.jwk"
    with _station(tmp_path, data, warehouse) as (agent, new, _path):
        new["buffer"]["seal_interval_s"] = 0.4
        text = toml_text(new, tmp_path)
        pushed = warehouse.push_config(station_id, text)
        applied = wait_record(
            warehouse, station_id, jwk, lambda b: b["version"] == pushed.version, "published"
        )
        agent.wait_log("event=remote_config_probation_passed")
    assert applied == _applied(pushed.version, text, warehouse, "mqtt")
    assert "remote_config_fetch" not in agent.text()  # no HTTPS fetch: the broker brought it
