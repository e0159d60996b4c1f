"""MQTT acknowledgements signed by the warehouse (issue 28): with the warehouse's key pinned
(``ack_keys``), only a signed acknowledgement naming the bytes sent marks a batch delivered.

Real Mosquitto, the reference warehouse (signing with its own key), the agent's sender and MQTT
transport in-process. The attacker computes digests with hashlib and gzip, not the agent's code.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import threading
import urllib.request

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.helpers.mqtt_station import Station
from tests.helpers.station import wait_for
from warehouse.acks import AckKey
from warehouse.reference import Warehouse, load_station_jwk

STATION = "E2E-01"  # the station of ``Station``
OTHER = "E2E-02"


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _pin(tmp_path, *keys: AckKey):
    path = tmp_path / "warehouse-keys.jwks"
    path.write_text(json.dumps({"keys": [k.jwk for k in keys]}))
    return path


class Attacker:
    """A client allowed to read ``…/batches`` and write ``…/acks`` (the broker has no ACL)."""

    def __init__(self, port: int, station: str = STATION) -> None:
        self.batches: dict[int, bytes] = {}  # seq -> the JWS bytes seen (inflated)
        self.prefix = f"stations/{station}"
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"attacker-{station}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{self.prefix}/batches/#", qos=1)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        body = gzip.decompress(msg.payload) if msg.topic.endswith("/gzip") else msg.payload
        payload = json.loads(base64.urlsafe_b64decode(body.split(b".")[1] + b"=="))
        with self._lock:
            self.batches[payload["seq"]] = body

    def seen(self) -> dict[int, bytes]:
        with self._lock:
            return dict(self.batches)

    def publish_ack(self, ack: dict | bytes, qos: int = 1) -> None:
        data = ack if isinstance(ack, bytes) else json.dumps(ack).encode()
        self.client.publish(f"{self.prefix}/acks", data, qos=qos)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _warehouse(tmp_path, key_path, port: int | None, ack_key: AckKey, **more) -> Warehouse:
    stations = {STATION: load_station_jwk(key_path.parent / "station.jwk"), **more}
    wh = Warehouse(tmp_path / "warehouse.db", stations, ack_key)
    if port is not None:
        wh.start_mqtt("127.0.0.1", port)
    return wh


def test_a_forged_ack_marks_nothing_delivered_and_the_warehouse_ack_does(
    tmp_path, station_key, mosquitto
):
    """The warehouse is stopped; a subscriber on …/batches computes each batch's digest and
    publishes ``{"seq", "digest", "result": "stored"}`` on …/acks. Nothing is marked delivered;
    the forgeries are counted. Once the warehouse runs, its signed acks deliver every batch."""
    wh_key = AckKey.generate()
    _warehouse(tmp_path, station_key[0], mosquitto.port, wh_key).stop()  # its session queues
    station = Station(
        tmp_path, station_key[0], mosquitto.port, ack_keys=_pin(tmp_path, wh_key), ack_timeout_s=60
    )
    attacker = Attacker(mosquitto.port)
    warehouse = None
    try:
        station.seal(3)
        wait_for(lambda: len(attacker.seen()) == 3, 30, "the attacker sees the 3 batches")
        for seq, body in attacker.seen().items():
            attacker.publish_ack({"seq": seq, "digest": _digest(body), "result": "stored"})
        desk = station.transport.acks
        wait_for(
            lambda: desk.refused >= 3 or station.buffer.first_pending_seq("mqtt") != 1,
            30,
            "the 3 forged acks judged",
        )
        assert station.buffer.first_pending_seq("mqtt") == 1, "a forged ack counted"
        assert station.buffer.ledger.quarantined("mqtt") == []
        warehouse = _warehouse(tmp_path, station_key[0], mosquitto.port, wh_key)
        wait_for(station.all_delivered, 60, "every batch acknowledged by the warehouse")
        assert desk.refused == 3
    finally:
        attacker.stop()
        station.stop()
        if warehouse is not None:
            warehouse.stop()


def test_an_ack_signed_by_another_key_is_refused(tmp_path, station_key, mosquitto):
    """A warehouse signing with a key the station did not pin is not believed."""
    station = Station(
        tmp_path,
        station_key[0],
        mosquitto.port,
        ack_keys=_pin(tmp_path, AckKey.generate()),
        ack_timeout_s=2,
    )
    warehouse = _warehouse(tmp_path, station_key[0], mosquitto.port, AckKey.generate())
    try:
        station.seal(2)
        wait_for(lambda: warehouse.count(STATION)[0] == 2, 30, "both batches at the warehouse")
        wait_for(lambda: station.transport.acks.refused >= 2, 30, "both acks refused")
        assert station.buffer.first_pending_seq("mqtt") == 1
        # what status shows: why no acknowledgement counts
        why = "acknowledgement(s) refused, the last: not signed by the warehouse"
        wait_for(lambda: why in (station.sender.last_error or ""), 30, "the reason in status")
    finally:
        station.stop()
        warehouse.stop()


def test_a_replayed_ack_of_another_station_is_refused(tmp_path, station_key, mosquitto):
    """The attacker posts this station's batch to the warehouse as another station's: the
    warehouse refuses it (400) with an acknowledgement it signs, ``rejected``, naming these very
    bytes and seq, for the other station. Replayed on this station's …/acks it must not
    quarantine the batch: it is another station's acknowledgement."""
    wh_key = AckKey.generate()
    station = Station(
        tmp_path, station_key[0], mosquitto.port, ack_keys=_pin(tmp_path, wh_key), ack_timeout_s=60
    )
    attacker = Attacker(mosquitto.port)
    other = load_station_jwk(station_key[0].parent / "station.jwk")  # registered: any key
    warehouse = _warehouse(tmp_path, station_key[0], None, wh_key, **{OTHER: other})
    port = warehouse.start_http()
    try:
        station.seal(1)
        wait_for(lambda: 1 in attacker.seen(), 30, "the attacker sees batch 1")
        body = attacker.seen()[1]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/stations/{OTHER}/batches",
            data=body,
            headers={"Content-Type": "application/jose"},
        )
        try:
            urllib.request.urlopen(request, timeout=10)
            raise AssertionError("the warehouse took a batch of another station")
        except urllib.error.HTTPError as exc:
            assert exc.code == 400
            answer = json.loads(exc.read())
        assert answer["result"] == "rejected" and answer["seq"] == 1
        assert answer["digest"] == _digest(body)
        attacker.publish_ack({k: answer[k] for k in ("seq", "digest", "result", "reason", "jws")})
        wait_for(
            lambda: (
                station.transport.acks.refused >= 1 or station.buffer.ledger.quarantined("mqtt")
            ),
            30,
            "the replay judged",
        )
        assert station.buffer.ledger.quarantined("mqtt") == []
        assert station.buffer.first_pending_seq("mqtt") == 1
    finally:
        attacker.stop()
        station.stop()
        warehouse.stop()


def test_an_unsigned_ack_flood_leaves_a_few_lines_and_the_count(
    tmp_path, station_key, mosquitto, caplog
):
    """100,000 unsigned acknowledgements on …/acks: each refused and counted, the journal gets
    at most a few lines (one a minute), the last carrying the count."""
    station = Station(
        tmp_path,
        station_key[0],
        mosquitto.port,
        ack_keys=_pin(tmp_path, AckKey.generate()),
        ack_timeout_s=60,
    )
    attacker = Attacker(mosquitto.port)
    desk = station.transport.acks
    total, chunk = 100_000, 2_000
    caplog.set_level(logging.INFO, logger="agent.transports.mqtt")
    try:
        forged = json.dumps({"seq": 1, "digest": "A" * 43, "result": "stored"}).encode()
        for sent in range(chunk, total + 1, chunk):
            for _ in range(chunk):
                attacker.publish_ack(forged, qos=0)
            # the broker drops QoS 0 messages a slow subscriber cannot take: keep pace
            wait_for(lambda s=sent: desk.refused >= s - chunk // 2, 60, f"{sent} acks counted")
        wait_for(lambda: desk.refused >= total * 0.98, 60, "the flood counted")
        real = desk.refusals._monotonic  # a minute later, one more: its line has the count
        desk.refusals._monotonic = lambda: real() + 61

        def refused() -> list[dict]:
            return [
                r.fields  # type: ignore[attr-defined]
                for r in caplog.records
                if r.name == "agent.transports.mqtt" and r.getMessage() == "mqtt_ack_refused"
            ]

        # On a loaded machine the flood itself can outlast a real minute and write its own
        # line, with the count so far: wait for the line this ack provokes, past those.
        before = len(refused())
        attacker.publish_ack(forged)
        wait_for(lambda: len(refused()) > before, 30, "a line a minute later")
        lines = [r for r in caplog.records if r.name == "agent.transports.mqtt"]
        assert len(lines) <= 300, len(lines)
        assert refused()[0]["count"] == 1
        assert refused()[-1]["count"] >= total * 0.98 and refused()[-1]["held_back"] > 0
    finally:
        attacker.stop()
        station.stop()


def test_a_station_without_the_warehouse_key_still_delivers(tmp_path, station_key, mosquitto):
    """Migration: the warehouse signs, the station pins no key (``ack_keys`` unset): it reads
    the plain members as before and delivers every batch (the WARNING is
    tests/config/test_unsigned_acks_notice.py)."""
    station = Station(tmp_path, station_key[0], mosquitto.port, ack_timeout_s=60)
    warehouse = _warehouse(tmp_path, station_key[0], mosquitto.port, AckKey.generate())
    try:
        station.seal(3)
        wait_for(station.all_delivered, 60, "every batch acknowledged")
        assert station.transport.acks.refused == 0 and warehouse.count(STATION)[0] == 3
    finally:
        station.stop()
        warehouse.stop()
