"""Issue 32, both halves together: a document the warehouse signs with its own code (the reference
warehouse's ``push_config``, as ``station-warehouse config push``) and serves at
``GET /stations/{id}/config`` is fetched, verified with the key the station pins for
acknowledgements, and applied by a real agent; the ``config`` record in the chain names it."""

from __future__ import annotations

import copy
import json
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers.agent_process import AgentProcess, station_config
from tests.helpers.remote_config import sha256_hex, toml_text, wait_record
from tests.helpers.station import write_toml


@contextmanager
def _station(
    tmp_path: Path, data: dict, warehouse, before_start: Callable[[str], object] | None = None
) -> Iterator[tuple[AgentProcess, str]]:
    """A real ``station-agent run`` of ``data`` pinning the warehouse's ack key (which signs its
    configuration documents) on its first transport, and the text of the same configuration
    with a 0.4 s seal (the document to push: ``before_start(text)`` may push it before the
    station runs); stopped with SIGTERM, exit code 0."""
    pinned = tmp_path / "warehouse-ack.jwk"
    pinned.write_text(json.dumps(warehouse.ack_key.jwk))
    data["transports"][0]["ack_keys"] = str(pinned)
    path = write_toml(tmp_path / "agent.toml", data)
    new = copy.deepcopy(data)
    new["buffer"]["seal_interval_s"] = 0.4
    text = toml_text(new, tmp_path)
    if before_start is not None:
        before_start(text)
    agent = AgentProcess(path, tmp_path / "agent.log")
    try:
        agent.wait_log("event=agent_started")
        yield agent, text
    finally:
        if agent.proc.poll() is None:
            agent.signal(signal.SIGTERM)
            assert agent.wait() == 0, agent.text()[-3000:]


def _push(warehouse, station_id: str, jwk: Path, text: str, what: str) -> tuple[Any, dict]:
    """The warehouse pushes ``text``: (its push, the station's ``config`` record of that
    version, as the warehouse received it)."""
    pushed = warehouse.push_config(station_id, text)
    return pushed, _record_of(warehouse, station_id, jwk, pushed.version, what)


def _record_of(warehouse, station_id: str, jwk: Path, version: int, what: str) -> dict:
    """The station's ``config`` record of document ``version``, once the warehouse has it."""

    def of_this_version(body: dict) -> bool:
        return body["version"] == version

    return wait_record(warehouse, station_id, jwk, of_this_version, what)


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
    with _station(tmp_path, data, warehouse) as (_agent, text):
        first, applied = _push(warehouse, station_id, jwk, text, "pushed, applied")
        second, again = _push(
            warehouse, station_id, jwk, text.replace("0.4", "0.3"), "the next one"
        )
    assert applied == _applied(first.version, text, warehouse, "https")
    assert first.digest == sha256_hex(text)  # the warehouse and the station name the same bytes
    assert again["outcome"] == "applied" and second.version == first.version + 1


def test_a_document_the_warehouse_publishes_on_mqtt_is_applied_by_the_station(
    tmp_path, station_id, station_key, steady_analyzer, warehouse, mosquitto
):
    """The other road end to end: the warehouse's push publishes the document retained on its
    broker (``config push`` with ``[intake.mqtt]``) before the station runs; the station, once
    connected, takes it from the retained message on its MQTT uplink (no HTTPS at all) and
    applies it; the ``config`` record comes back through the same broker, acknowledged by the
    warehouse with the key that signed the push."""
    warehouse.start_mqtt("127.0.0.1", mosquitto.port, client_id=f"wh-{station_id}")
    data = station_config(tmp_path, station_id, station_key[0], steady_analyzer.port, 1)
    uplink = {"type": "mqtt", "name": "uplink", "host": "127.0.0.1", "port": mosquitto.port}
    data["transports"] = [{**uplink, "ack": "warehouse"}]
    data["remote_config"] = {"enabled": True, "mqtt": True, "probation_s": 4}
    jwk = station_key[0].parent / "station.jwk"
    pushed = []  # published while the station is not connected: only a retained one reaches it
    with _station(
        tmp_path,
        data,
        warehouse,
        lambda text: pushed.append(warehouse.push_config(station_id, text)),
    ) as (agent, text):
        applied = _record_of(warehouse, station_id, jwk, pushed[0].version, "published")
        agent.wait_log("event=remote_config_probation_passed")
    assert applied == _applied(pushed[0].version, text, warehouse, "mqtt")
    assert "remote_config_fetch" not in agent.text()  # no HTTPS fetch: the broker brought it
