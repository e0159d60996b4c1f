"""Outages and refusals: the backlog waits on disk and drains in order; nothing lost or doubled."""

from __future__ import annotations

import sqlite3
import time

from agent.protocol.verify import verify_chain
from agent.runtime.agent import Agent
from agent.status.report import gather, render
from tests.helpers.station import (
    analyzer_device,
    buffer_readings,
    http_transport,
    make_config,
    wait_for,
    warehouse_readings,
)


def _arrival_order(warehouse_db, station: str) -> list[int]:
    db = sqlite3.connect(warehouse_db)
    return [
        s
        for (s,) in db.execute(
            "SELECT seq FROM batches WHERE station = ? ORDER BY rowid", (station,)
        )
    ]


def test_broker_outage_backlog_drains_in_order_without_loss(
    tmp_path, station_id, station_key, analyzer, warehouse, mosquitto
):
    warehouse.start_mqtt("127.0.0.1", mosquitto.port, client_id=f"wh-{station_id}")
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port, poll=0.1)],
        [{"type": "mqtt", "host": "127.0.0.1", "port": mosquitto.port, "inflight": 5}],
        seal_interval_s=0.2,
    )
    agent = Agent(config)
    agent.start()
    try:
        wait_for(lambda: warehouse.count(station_id)[0] >= 2, 20, "first batches")
        mosquitto.stop()
        wait_for(  # polling and sealing go on while the broker is away
            lambda: gather(config)["transports"][0]["backlog_batches"] >= 10,
            30,
            "a backlog of 10 batches during the outage",
        )
        mosquitto.start()
        sealed = agent.buffer.chain_head()[0]
        wait_for(lambda: warehouse.count(station_id)[0] >= sealed, 30, "backlog drained")
    finally:
        agent.stop(grace_s=5)
    wait_for(
        lambda: (
            warehouse_readings(warehouse.jws_list(station_id))
            == buffer_readings(config.buffer.path)
        ),
        10,
        "every stored reading at warehouse",
    )
    order = _arrival_order(warehouse.db_path, station_id)
    assert order == sorted(order), "backlog must arrive oldest first"
    assert len(set(order)) == len(order)
    report = verify_chain(enumerate(warehouse.jws_list(station_id)), station_key[1])
    assert report.ok, report.lines()


def test_http_500s_then_recovery_delivers_everything_once(
    tmp_path, station_id, station_key, analyzer, warehouse
):
    port = warehouse.start_http()
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port)],
        # one request at a time: then batches also arrive in seq order (checked below)
        [http_transport(port, backoff_initial_s=0.1, backoff_max_s=0.5, inflight=1)],
    )
    warehouse.fault = "500"
    agent = Agent(config)
    agent.start()
    try:
        wait_for(
            lambda: warehouse.received == 0 and agent.senders[0].last_error, 10, "a failed send"
        )
        assert "HTTP 500" in agent.senders[0].last_error
        wait_for(  # a while of failing sends: several batches sealed, none delivered
            lambda: agent.buffer.chain_head()[0] >= 4, 20, "4 batches sealed during the 500s"
        )
        assert warehouse.count(station_id)[0] == 0
        warehouse.fault = None
        wait_for(
            lambda: warehouse.count(station_id)[0] >= agent.buffer.chain_head()[0] > 3,
            20,
            "recovery",
        )
    finally:
        agent.stop(grace_s=5)
    assert warehouse_readings(warehouse.jws_list(station_id)) == buffer_readings(config.buffer.path)
    order = _arrival_order(warehouse.db_path, station_id)
    assert order == sorted(order)


def test_rejected_batch_is_quarantined_and_later_batches_still_flow(
    tmp_path, station_id, station_key, analyzer, warehouse
):
    """The warehouse answers 400 (here: for a while it holds the station's kid with the wrong
    public key, so no signature verifies; an unknown kid would be 425, retried)."""
    from agent.protocol.keys import generate_key
    from warehouse.reference import load_station_jwk
    from warehouse.verify.verifier import RegisteredKey

    right_key = warehouse.keys[station_id]
    _k, other_jwk = generate_key(tmp_path / "other")
    warehouse.keys[station_id] = RegisteredKey(right_key.kid, load_station_jwk(other_jwk).key)
    port = warehouse.start_http()
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(analyzer.port)],
        [http_transport(port)],
    )
    agent = Agent(config)
    agent.start()
    try:
        wait_for(lambda: len(warehouse.rejections()) >= 2, 15, "rejections")
        warehouse.keys[station_id] = right_key
        rejected_until = agent.buffer.chain_head()[0]
        wait_for(lambda: warehouse.count(station_id)[0] >= 3, 15, "later batches accepted")
    finally:
        agent.stop(grace_s=5)
    status = gather(config)
    quarantined = status["transports"][0]["quarantined"]
    assert len(quarantined) >= 2
    assert all(
        "signature does not verify" in q["reason"] and "HTTP 400" in q["reason"]
        for q in quarantined
    )
    assert status["transports"][0]["backlog_batches"] == 0
    assert "QUARANTINED seq 1: HTTP 400" in render(status)
    # quarantined batches are kept in the buffer, not dropped
    db = sqlite3.connect(config.buffer.path)
    assert (
        db.execute("SELECT count(*) FROM batches WHERE seq <= ?", (rejected_until,)).fetchone()[0]
        == rejected_until
    )
    seqs = [int(s) for s, _ in db.execute("SELECT seq, 1 FROM deliveries WHERE state = 2")]
    assert min(seqs) == 1
    assert warehouse.gaps(station_id), "the warehouse should see the quarantined seqs as a gap"

    # The technician fixes the cause, requeues, restarts: the gap is filled, the chain whole.
    from agent.cli.main import main
    from tests.helpers.station import write_toml

    toml = write_toml(
        tmp_path / "agent.toml",
        {
            "station": {"id": station_id},
            "signing": {"key": str(station_key[0])},
            "buffer": {"path": str(config.buffer.path)},
            "transports": [http_transport(port)],
        },
    )
    agent = Agent(config)
    agent.start()  # running while the technician requeues: it picks them up by itself
    try:
        before = warehouse.count(station_id)[0]
        wait_for(lambda: warehouse.count(station_id)[0] > before, 15, "the restarted agent sending")
        assert main(["requeue", "--config", str(toml), "--transport", "https"]) == 0
        assert gather(config)["transports"][0]["quarantined"] == []
        wait_for(lambda: not warehouse.gaps(station_id), 15, "the requeued batches")
        sealed = agent.buffer.chain_head()[0]
        wait_for(lambda: warehouse.count(station_id)[0] >= sealed + 2, 10, "later batches too")
    finally:
        agent.stop(grace_s=5)
    report = verify_chain(enumerate(warehouse.jws_list(station_id)), station_key[1])
    assert report.ok, report.lines()
    assert warehouse_readings(warehouse.jws_list(station_id)) == buffer_readings(config.buffer.path)


def test_status_names_a_device_that_does_not_answer(tmp_path, station_id, station_key, warehouse):
    from simulators.mosquitto import free_port

    port = warehouse.start_http()
    config = make_config(
        tmp_path,
        station_id,
        station_key[0],
        [analyzer_device(free_port(), name="so2-analyzer")],
        [http_transport(port)],
    )
    agent = Agent(config)
    agent.start()
    try:
        wait_for(lambda: warehouse.count(station_id)[1] >= 12, 15, "fault readings delivered")
    finally:
        agent.stop(grace_s=5)
    text = render(gather(config))
    assert "so2-analyzer: FAULT" in text
    assert "so2-analyzer" in text and "connection refused" in text.lower()
    held = warehouse_readings(warehouse.jws_list(station_id))
    assert all(value is None and status == "02" for (_d, _p, _u, _t, value, status) in held)


def test_mqtt_in_flight_bytes_are_capped_whatever_the_backlog(tmp_path, station_key, mosquitto):
    """Memory stays flat in a drain: large batches are sent a few at a time, not 20 at once."""
    from agent.buffer import Buffer
    from agent.protocol.keys import load_private_key
    from agent.protocol.signer import Signer
    from agent.seal.sealing import Sealer
    from agent.send.sender import Sender
    from agent.support.clock import SystemClock
    from agent.transports.mqtt.transport import MqttTransport, MqttTransportConfig
    from core.reading import Reading

    buf = Buffer(tmp_path / "b.db", durability="process")
    for poll in range(40):
        buf.store_poll([Reading("d", f"p{i}", "u", poll * 1000, i * 1.5) for i in range(50)])
    signer = Signer(load_private_key(station_key[0]))
    # v1: batches large enough (~80 KB) that the byte cap, not the count, limits the window
    Sealer(buf, signer, "S", SystemClock(), 500, payload_version=1).seal_pending()
    size = len(buf.pending("x", limit=1)[0].jws)
    cfg = MqttTransportConfig(
        type="mqtt",
        host="127.0.0.1",
        port=mosquitto.port,
        inflight=20,
        inflight_bytes=max(65536, int(size * 1.5)),
        ack="broker",  # no warehouse here: the window is what this test is about
    )
    sender = Sender(buf, MqttTransport(cfg, "S"), SystemClock())
    peak = 0
    sender.start()
    try:
        deadline = time.monotonic() + 20
        while buf.first_pending_seq("mqtt") is not None and time.monotonic() < deadline:
            peak = max(peak, sender.in_flight())
            time.sleep(0.001)  # sampling the in-flight count until the deadline, not waiting
    finally:
        sender.stop(2)
    assert buf.first_pending_seq("mqtt") is None, "all 4 batches acknowledged"
    assert 1 <= peak <= 2, f"{peak} batches of {size} bytes were in flight at once"
