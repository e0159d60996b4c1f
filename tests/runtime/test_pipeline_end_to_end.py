"""The whole chain against real parts: Modbus over TCP, SQLite, HTTPS and MQTT to the warehouse."""

from __future__ import annotations

import warnings

import pytest
from joserfc import jws as jose_jws
from joserfc.jwk import OKPKey

from agent.protocol.keys import load_jwk
from agent.protocol.verify import verify_chain
from agent.runtime.agent import Agent
from tests.helpers.station import (
    analyzer_device,
    buffer_readings,
    http_transport,
    make_config,
    wait_for,
    warehouse_readings,
)


def _run_until(agent: Agent, warehouse, station: str, batches: int) -> None:
    agent.start()
    try:
        wait_for(lambda: warehouse.count(station)[0] >= batches, 30, f"{batches} batches")
    finally:
        agent.stop(grace_s=5)


def _assert_delivered_exactly_once(config, warehouse, station: str) -> None:
    stored = buffer_readings(config.buffer.path)
    held = warehouse_readings(warehouse.jws_list(station))
    assert stored, "the agent stored no readings"
    assert held == stored, "warehouse holds a different multiset of readings than the buffer"
    assert max(held.values()) == 1, "a reading reached the warehouse twice"
    assert warehouse.gaps(station) == []


def test_https_delivers_every_reading_signed_and_chained(
    tmp_path, station_id, station_key, analyzer, warehouse, tls_files
):
    port = warehouse.start_http(cert=tls_files.server_cert, key=tls_files.server_key)
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port)],
        [
            {
                "type": "https",
                "base_url": f"https://127.0.0.1:{port}",
                "tls": {"ca_file": str(tls_files.ca)},
            }
        ],
    )
    _run_until(Agent(config), warehouse, station_id, 5)
    _assert_delivered_exactly_once(config, warehouse, station_id)
    report = verify_chain(enumerate(warehouse.jws_list(station_id)), station_key[1])
    assert report.ok, report.lines()
    statuses = {r.status for b in report.verified.values() for r in b.payload.readings}
    assert "01" in statuses, "the NOx calibration window should show as status 01"
    assert warehouse.rejections() == []


def test_mqtt_delivers_every_reading_via_the_running_broker(
    tmp_path, station_id, station_key, analyzer, warehouse, mosquitto
):
    warehouse.start_mqtt("127.0.0.1", mosquitto.port, client_id=f"wh-{station_id}")
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port)],
        [{"type": "mqtt", "host": "127.0.0.1", "port": mosquitto.port}],
    )
    _run_until(Agent(config), warehouse, station_id, 5)
    wait_for(
        lambda: (
            warehouse_readings(warehouse.jws_list(station_id))
            == buffer_readings(config.buffer.path)
        ),
        10,
        "the last acknowledged batches to reach the warehouse",
    )
    _assert_delivered_exactly_once(config, warehouse, station_id)


def test_every_batch_verifies_with_joserfc(tmp_path, station_id, station_key, analyzer, warehouse):
    port = warehouse.start_http()
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port)],
        [http_transport(port)],
    )
    _run_until(Agent(config), warehouse, station_id, 3)
    jwk = load_jwk(station_key[0].parent / "station.jwk")
    key = OKPKey.import_key(jwk)
    tokens = warehouse.jws_list(station_id)
    assert len(tokens) >= 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # payload v3 is signed "Ed25519": joserfc has no warning
        for token in tokens:
            obj = jose_jws.deserialize_compact(token, key, algorithms=["Ed25519"])
            assert obj.headers() == {"alg": "Ed25519", "kid": key.thumbprint(), "typ": "JOSE"}
        forged = tokens[0][:-4] + ("AAAA" if not tokens[0].endswith("AAAA") else "BBBB")
        with pytest.raises(Exception, match="signature"):
            jose_jws.deserialize_compact(forged, key, algorithms=["Ed25519"])


def test_both_transports_each_receive_every_batch(
    tmp_path, station_id, station_key, analyzer, warehouse, mosquitto
):
    port = warehouse.start_http()
    warehouse.start_mqtt("127.0.0.1", mosquitto.port, client_id=f"wh-{station_id}")
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port)],
        [
            {
                "type": "https",
                "name": "rest",
                "base_url": f"http://127.0.0.1:{port}",
                "allow_plain_http": True,
            },
            {"type": "mqtt", "name": "broker", "host": "127.0.0.1", "port": mosquitto.port},
        ],
    )
    agent = Agent(config)
    _run_until(agent, warehouse, station_id, 4)
    from agent.status.report import gather

    status = gather(config)
    for t in status["transports"]:
        assert t["backlog_batches"] == 0, t
        assert t["last_acked_seq"] == status["last_seq"], t
    _assert_delivered_exactly_once(config, warehouse, station_id)


def test_chain_continues_across_an_agent_restart(
    tmp_path, station_id, station_key, analyzer, warehouse
):
    port = warehouse.start_http()
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port)],
        [http_transport(port)],
    )
    _run_until(Agent(config), warehouse, station_id, 3)
    first_run = warehouse.count(station_id)[0]
    _run_until(Agent(config), warehouse, station_id, first_run + 3)
    report = verify_chain(enumerate(warehouse.jws_list(station_id)), station_key[1])
    assert report.ok, report.lines()
    assert sorted(report.verified) == list(range(1, len(report.verified) + 1))
    _assert_delivered_exactly_once(config, warehouse, station_id)
