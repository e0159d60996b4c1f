"""MQTT ``ack = "warehouse"``: a batch counts as delivered only when the warehouse stored it.

Real Mosquitto processes, the reference warehouse as the consumer, the agent's sender and MQTT
transport in-process. Digests are computed here with hashlib, not with the agent's code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

import agent.send.send_failures as send_failures
from agent.transports.mqtt.acks import AckError, parse_ack
from simulators.mosquitto import Mosquitto
from tests.helpers.mqtt_station import STATION, Station
from tests.helpers.station import wait_for
from warehouse.reference import Warehouse, load_station_jwk

NOT_ACKED = "no acknowledgement from the warehouse"


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _warehouse(tmp_path, key_path, port: int, kind: type[Warehouse] = Warehouse) -> Warehouse:
    wh = kind(
        tmp_path / "warehouse.db", {STATION: load_station_jwk(key_path.parent / "station.jwk")}
    )
    wh.start_mqtt("127.0.0.1", port)
    return wh


def test_nothing_counts_as_delivered_while_no_warehouse_consumes(tmp_path, station_key, mosquitto):
    """The broker is up and PUBACKs, but no warehouse is subscribed: the broker drops the
    batches. None may be marked delivered; once the warehouse subscribes, the re-published
    batches reach it and are acknowledged."""
    station = Station(tmp_path, station_key[0], mosquitto.port, ack_timeout_s=1.5)
    warehouse = None
    try:
        station.seal(3)
        wait_for(lambda: NOT_ACKED in (station.sender.last_error or ""), 30, "an ack timeout")
        assert station.buffer.first_pending_seq("mqtt") == 1, "PUBACK must not count"
        warehouse = _warehouse(tmp_path, station_key[0], mosquitto.port)
        wait_for(station.all_delivered, 60, "every batch acknowledged by the warehouse")
        assert warehouse.count(STATION) == (3, 3)
        assert warehouse.rejections() == []
    finally:
        station.stop()
        if warehouse is not None:
            warehouse.stop()


def test_a_broker_restarted_without_persistence_loses_nothing(tmp_path, station_key):
    """The warehouse consumer is away (its persistent session holds its queue on the broker);
    the agent publishes; the broker restarts WITHOUT persistence, so that queue is gone. Every
    batch still reaches the warehouse, because none was counted delivered on the PUBACK."""
    broker = Mosquitto(tmp_path / "mosquitto", persistence=False).start()
    station = warehouse = None
    try:
        _warehouse(tmp_path, station_key[0], broker.port).stop()  # its session now exists
        station = Station(tmp_path, station_key[0], broker.port, ack_timeout_s=1.5)
        station.seal(3)
        wait_for(
            lambda: NOT_ACKED in (station.sender.last_error or "") or station.all_delivered(),
            30,
            "the broker's PUBACKs and an ack timeout",
        )
        broker.stop()
        broker.start()
        warehouse = _warehouse(tmp_path, station_key[0], broker.port)
        wait_for(lambda: warehouse.count(STATION) == (3, 3), 60, "every batch at the warehouse")
        wait_for(station.all_delivered, 60, "every batch acknowledged")
        assert warehouse.rejections() == []
    finally:
        if station is not None:
            station.stop()
        if warehouse is not None:
            warehouse.stop()
        broker.stop()


class TooEarlyOnce(Warehouse):
    """The reference warehouse, answering 425 (too early: nothing stored) to the first copy of
    seq 2 it receives, as it does to a batch naming a record that has not arrived yet."""

    answered_425 = 0
    times = 1  # how many copies of seq 2 are answered 425

    def receive(self, station: str, body: bytes, via: str) -> tuple[int, str]:
        claimed = json.loads(base64.urlsafe_b64decode(body.split(b".")[1] + b"==")).get("seq")
        if claimed == 2 and self.answered_425 < self.times:
            self.answered_425 += 1
            return 425, "seq 2 names descriptor seq 1, not received yet"
        return super().receive(station, body, via)


class TooEarlyAlways(TooEarlyOnce):
    """Answers 425 to every copy of seq 2: the record it names never comes."""

    times = 10**9


def test_too_early_is_answered_retry_and_sent_again_at_once(
    tmp_path, station_key, mosquitto, caplog
):
    """A 425 over MQTT is an acknowledgement saying ``retry``: the agent publishes the batch
    again after its backoff (here 0.2 s), not after the 60 s acknowledgement timeout, and it is
    stored once, quarantined never. A batch that overtook its record is no failure: one INFO
    line, no ``send_failed``, nothing counted as failed."""
    caplog.set_level(logging.INFO, logger="agent.sender")
    warehouse = _warehouse(tmp_path, station_key[0], mosquitto.port, TooEarlyOnce)
    station = Station(tmp_path, station_key[0], mosquitto.port, ack_timeout_s=60)
    try:
        station.seal(3)
        wait_for(station.all_delivered, 20, "every batch acknowledged well before 60 s")
        assert warehouse.answered_425 == 1
        assert warehouse.count(STATION) == (3, 3)
        assert warehouse.rejections() == [] and station.buffer.ledger.quarantined("mqtt") == []
        events = [r.getMessage() for r in caplog.records]
        assert events.count("send_too_early") == 1 and "send_failed" not in events, events
        assert station.sender.failures == 0
    finally:
        station.stop()
        warehouse.stop()


def test_too_early_for_too_long_is_a_failure(tmp_path, station_key, mosquitto, caplog, monkeypatch):
    """A batch answered 425 past ``TOO_EARLY_PATIENCE_S`` (here 1 s) shows as failing, with the
    warehouse's reason: the record it waits for is not coming by itself. Never quarantined."""
    monkeypatch.setattr(send_failures, "TOO_EARLY_PATIENCE_S", 1.0)
    caplog.set_level(logging.INFO, logger="agent.sender")
    warehouse = _warehouse(tmp_path, station_key[0], mosquitto.port, TooEarlyAlways)
    station = Station(tmp_path, station_key[0], mosquitto.port, ack_timeout_s=60)
    try:
        station.seal(3)
        wait_for(
            lambda: "send_failed" in [r.getMessage() for r in caplog.records],
            20,
            "seq 2 reported failing",
        )
        failed = next(r for r in caplog.records if r.getMessage() == "send_failed")
        assert failed.levelno == logging.WARNING and failed.fields["seq"] == 2
        assert "not received yet" in failed.fields["reason"]
        assert station.sender.failing_since_ms is not None
        assert "not received yet" in (station.sender.last_error or "")
        assert warehouse.count(STATION) == (2, 2)  # seq 1 and 3
        assert station.buffer.ledger.quarantined("mqtt") == []
        assert station.buffer.first_pending_seq("mqtt") == 2
    finally:
        station.stop()
        warehouse.stop()


def test_an_ack_naming_other_bytes_is_refused_and_logged(tmp_path, station_key, mosquitto, caplog):
    """An acknowledgement for seq 1 whose digest is not that of the bytes sent is refused (and
    logged); the one with the right digest, computed here with hashlib, is taken."""
    caplog.set_level(logging.ERROR, logger="agent.transports.mqtt")
    station = Station(tmp_path, station_key[0], mosquitto.port, ack_timeout_s=600)
    forger = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="forger")
    forger.connect("127.0.0.1", mosquitto.port)
    forger.loop_start()
    try:
        station.seal(1)
        wait_for(lambda: station.transport.in_flight() == 1, 20, "the batch in flight")
        jws = station.buffer.pending("mqtt")[0].jws.encode()
        wrong = {"seq": 1, "digest": _digest(jws + b"x"), "result": "stored"}
        forger.publish(f"stations/{STATION}/acks", json.dumps(wrong), qos=1).wait_for_publish(10)
        wait_for(
            lambda: any(r.getMessage() == "mqtt_ack_refused" for r in caplog.records),
            20,
            "the refusal in the log",
        )
        refusal = next(r for r in caplog.records if r.getMessage() == "mqtt_ack_refused")
        assert refusal.fields["seq"] == 1 and "digest" in refusal.fields["reason"]
        assert station.buffer.first_pending_seq("mqtt") == 1, "a wrong digest must not count"

        right = {"seq": 1, "digest": _digest(jws), "result": "stored"}
        forger.publish(f"stations/{STATION}/acks", json.dumps(right), qos=1)
        wait_for(station.all_delivered, 20, "the right acknowledgement taken")
    finally:
        forger.loop_stop()
        forger.disconnect()
        station.stop()


def test_broker_mode_is_explicit_and_counts_the_puback(tmp_path, station_key, mosquitto):
    """``ack = "broker"``: today's behaviour, chosen on purpose; no warehouse needed."""
    station = Station(tmp_path, station_key[0], mosquitto.port, ack="broker")
    try:
        station.seal(2)
        wait_for(station.all_delivered, 30, "PUBACKs")
    finally:
        station.stop()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=5000) | st.from_regex(rb"\{.{0,80}\}", fullmatch=True))
def test_parse_ack_refuses_garbage_with_its_own_error(payload: bytes) -> None:
    try:
        ack = parse_ack(payload)
    except AckError:
        return
    assert ack.seq >= 1 and len(ack.digest) == 43


def test_parse_ack_bounds_and_shapes() -> None:
    good = {"seq": 3, "digest": "A" * 43, "result": "duplicate"}
    assert parse_ack(json.dumps(good).encode()).result == "duplicate"
    for bad in (
        b"[" * 100_000,
        json.dumps({**good, "seq": True}).encode(),
        json.dumps({**good, "seq": 0}).encode(),
        json.dumps({**good, "digest": "short"}).encode(),
        json.dumps({**good, "result": "maybe"}).encode(),
        json.dumps({**good, "reason": 5}).encode(),
        b"\xff\xfe",
    ):
        with pytest.raises(AckError):
            parse_ack(bad)
