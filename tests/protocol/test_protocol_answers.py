"""Issue 27, item 8: each question a receiver had to guess at has one answer in docs/protocol.md,
and this file pins it against what is really on the wire: the agent's own sealing
(``Sealer``, ``descriptor_body``), the published schema (docs/batch.schema.json, read with
jsonschema), the agent's parser (``verify``) and the reference warehouse (its own verifier), over
real Mosquitto where the text describes MQTT. Digests are computed here with hashlib; payloads
are read with base64 and json.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import threading
from pathlib import Path

import jsonschema
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import warehouse.reference as reference
from agent.buffer import Buffer
from agent.protocol.batch import parse_payload
from agent.protocol.keys import load_private_key
from agent.protocol.signer import Signer
from agent.protocol.verify import check_batch
from agent.records.descriptor import descriptor_body
from agent.seal.sealing import Sealer
from agent.support.clock import SystemClock
from core.errors import VerificationError
from core.reading import Reading
from tests.helpers.station import ROOT, analyzer_device, http_transport, make_config, wait_for
from warehouse.reference import Warehouse, load_station_jwk
from warehouse.verify.verifier import check as reference_check

PROTOCOL = (ROOT / "docs/protocol.md").read_text()
SCHEMA = json.loads((ROOT / "docs/batch.schema.json").read_text())
TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")  # as the text says, exactly
T = 1_764_300_000_004


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _payload(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _digest(token: str) -> str:
    return _b64(hashlib.sha256(token.encode("ascii")).digest())


def _valid(payload: dict) -> bool:
    return jsonschema.Draft202012Validator(SCHEMA).is_valid(payload)


def _in_text(*phrases: str) -> None:
    flat = " ".join(PROTOCOL.split())
    for phrase in phrases:
        assert " ".join(phrase.split()) in flat, f"docs/protocol.md does not say: {phrase}"


@pytest.fixture
def chain(tmp_path, station_id, station_key) -> list[str]:
    """The agent's own seq 1 (the descriptor of a config with no device texts) and seq 2 (v3
    readings of every value kind, one channel stored twice at the same millisecond)."""
    devices, transports = [analyzer_device(1)], [http_transport(1)]
    config = make_config(tmp_path, station_id, station_key[0], devices, transports)
    buffer = Buffer(tmp_path / "buffer.db")
    sealer = Sealer(
        buffer, Signer(load_private_key(station_key[0])), station_id, SystemClock(), 100
    )
    try:
        descriptor = sealer.seal_record("descriptor", descriptor_body(config))
        sealer.descriptor_seq = descriptor.seq
        buffer.store_poll(
            [
                Reading("plc", "serial", "", T, "0042"),
                Reading("plc", "counter", "", T, 7),
                Reading("plc", "temp", "C", T, 12.0),
                Reading("plc", "flow", "m3/h", T, 41.25),
                Reading("plc", "pump", "", T, None, "02"),
            ],
            device="plc",
        )
        buffer.store_poll([Reading("plc", "serial", "", T, "9999")], device="plc")  # same ms
        (readings,) = sealer.seal_pending()
    finally:
        buffer.close()
    return [descriptor.jws, readings.jws]


# --- the payload: kinds, times, values, uniqueness, descriptor texts ------------------------
def test_the_agent_output_fits_the_schema_with_times_of_exactly_three_digits(chain) -> None:
    _in_text("with exactly three fraction digits (milliseconds) and `Z`")
    for token in chain:
        payload = _payload(token)
        assert _valid(payload), payload
        assert TIME.fullmatch(payload["sealed_at"])
    assert TIME.fullmatch(_payload(chain[1])["t0"])


@pytest.mark.parametrize(
    "when",
    [
        "2026-11-28T03:00:00Z",
        "2026-11-28T03:00:00.004123Z",
        "2026-11-28T10:00:00.004+07:00",
        "2026-11-28T03:00:00.04Z",
    ],
)
def test_a_time_other_than_milliseconds_utc_is_refused_by_schema_verify_and_warehouse(
    chain, station_key, station_id, warehouse, when
) -> None:
    payload = {**_payload(chain[0]), "sealed_at": when}
    assert not _valid(payload)
    token = Signer(load_private_key(station_key[0])).sign(json.dumps(payload).encode())
    with pytest.raises(VerificationError):
        check_batch(token, station_key[1])
    assert warehouse.receive(station_id, token.encode(), "test")[0] == 400


def test_values_keep_their_json_kind_from_the_agent_to_the_warehouse(
    chain, station_key, station_id
) -> None:
    _in_text('the serial number `"0042"` stays the four characters `"0042"`')
    channels = {c["param"]: c for c in _payload(chain[1])["channels"]}
    assert channels["serial"]["values"] == ["0042"]
    assert type(channels["counter"]["values"][0]) is int
    assert channels["temp"]["values"] == [12.0] and type(channels["temp"]["values"][0]) is float
    assert channels["pump"]["values"] == [None]
    key = load_station_jwk(station_key[0].parent / "station.jwk")
    reference_check(chain[0], key, station_id)  # the descriptor first, as a chain
    stored = {r["param"]: r["value"] for r in reference_check(chain[1], key, station_id).readings}
    assert stored["serial"] == "0042" and stored["counter"] == 7


def test_one_reading_per_channel_and_millisecond(chain) -> None:
    _in_text("no two readings share (`device`, `param`, `unit`, `time`)")
    channels = {c["param"]: c for c in _payload(chain[1])["channels"]}
    assert channels["serial"]["t"] == [0] and channels["serial"]["values"] == ["0042"]  # first


def test_descriptor_texts_not_configured_are_empty_strings_and_null_is_refused(
    chain, station_key, station_id, warehouse
) -> None:
    _in_text('a **text** not configured is `""`, never `null`')
    payload = _payload(chain[0])
    device = payload["body"]["devices"][0]
    assert [device[k] for k in ("make", "model", "serial_number", "principle", "range")] == [""] * 5
    assert payload["body"]["station"]["name"] == "" and payload["body"]["station"]["type"] is None
    assert payload["body"]["channels"][0]["limits"] is None
    forged = json.loads(json.dumps(payload))
    forged["body"]["devices"][0]["make"] = None
    assert not _valid(forged)
    token = Signer(load_private_key(station_key[0])).sign(json.dumps(forged).encode())
    with pytest.raises(VerificationError):
        check_batch(token, station_key[1])
    assert warehouse.receive(station_id, token.encode(), "test")[0] == 400


def test_the_descriptor_names_its_own_station_and_another_is_refused(
    chain, station_key, station_id, warehouse
) -> None:
    _in_text("`station.id` is always the batch's `station`")
    payload = _payload(chain[0])
    assert payload["body"]["station"]["id"] == payload["station"] == station_id
    forged = json.loads(json.dumps(payload))
    forged["body"]["station"]["id"] = "ANOTHER-STATION"
    token = Signer(load_private_key(station_key[0])).sign(json.dumps(forged).encode())
    with pytest.raises(VerificationError, match="station.id"):
        check_batch(token, station_key[1])
    assert warehouse.receive(station_id, token.encode(), "test")[0] == 400


@pytest.mark.parametrize("kind", ["readings", "nonsense"])
def test_the_schema_refuses_a_record_of_kind_readings_or_an_unknown_kind(chain, kind) -> None:
    _in_text("Any other kind is refused (400; the schema lists the kinds)")
    payload = {**_payload(chain[0]), "kind": kind}
    assert not _valid(payload)
    with pytest.raises(VerificationError):
        parse_payload(json.dumps(payload).encode())


def test_no_stale_promises_in_the_contract() -> None:
    assert "issue 14" not in PROTOCOL
    assert "it held a wrong key" not in PROTOCOL


# --- answers: alg, the HTTP body ------------------------------------------------------------
@pytest.mark.parametrize("alg", ["none", "HS256", "EdDSA"])
def test_a_refused_alg_is_answered_400(chain, station_key, station_id, warehouse, alg) -> None:
    _in_text("The warehouse answers every refused `alg` with **400**")
    signer = Signer(load_private_key(station_key[0]))
    if alg == "EdDSA":  # well signed, but not the name payload v3 goes with
        token = signer.sign(json.dumps(_payload(chain[0])).encode(), "EdDSA")
    else:
        head = _b64(json.dumps({"alg": alg, "kid": signer.kid, "typ": "JOSE"}).encode())
        signature = _b64(hashlib.sha256(b"any").digest()) if alg == "HS256" else ""
        token = f"{head}.{chain[0].split('.')[1]}.{signature}"
    status, reason = warehouse.receive(station_id, token.encode(), "t")
    assert status == 400 and "alg" in reason, reason


def test_the_http_answer_body_is_json_status_and_message(chain, station_id, warehouse) -> None:
    import http.client

    _in_text('`{"status": 201, "message": "stored seq 42", "seq": 42, "digest": "…", "result":')
    port = warehouse.start_http()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", f"/stations/{station_id}/batches", chain[0],
                     {"Content-Type": "application/jose"})  # fmt: skip
        response = conn.getresponse()
        answer = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 201 and response.getheader("Content-Type") == "application/json"
    jws = answer.pop("jws")  # signed: tests/warehouse/test_warehouse_signed_acks.py
    assert isinstance(jws, str) and jws.count(".") == 2
    digest = base64.urlsafe_b64encode(hashlib.sha256(chain[0].encode()).digest()).rstrip(b"=")
    assert answer == {
        "status": 201, "message": "stored seq 1", "seq": 1, "digest": digest.decode(),
        "result": "stored",
    }  # fmt: skip


# --- MQTT: topics, digest, and when nothing is acknowledged ---------------------------------
class _Acks:
    """A subscriber to every station's acknowledgements, in arrival order."""

    def __init__(self, port: int) -> None:
        self.seen: list[tuple[str, dict]] = []
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *a: c.subscribe("stations/+/acks", qos=1)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = lambda c, u, m: self.seen.append((m.topic, json.loads(m.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert ready.wait(10)

    def publish(self, topic: str, body: bytes) -> None:
        self.client.publish(topic, body, qos=1).wait_for_publish(10)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_the_warehouse_takes_both_topics_and_acks_with_the_digest_of_the_inflated_jws(
    chain, station_id, warehouse, mosquitto
) -> None:
    _in_text("**both** `{topic_prefix}/+/batches` and `{topic_prefix}/+/batches/gzip`",
             "from `…/batches/gzip` the bytes after inflating, never the gzip bytes")  # fmt: skip
    warehouse.start_mqtt("127.0.0.1", mosquitto.port)
    acks = _Acks(mosquitto.port)
    try:
        acks.publish(f"stations/{station_id}/batches", chain[0].encode())
        zipped = gzip.compress(chain[1].encode(), mtime=0)
        acks.publish(f"stations/{station_id}/batches/gzip", zipped)
        wait_for(lambda: len(acks.seen) >= 2, 15, "both acknowledgements")
    finally:
        acks.stop()
    (t1, a1), (t2, a2) = acks.seen
    assert t1 == t2 == f"stations/{station_id}/acks"
    assert (a1["seq"], a1["result"], a1["digest"]) == (1, "stored", _digest(chain[0]))
    assert (a2["seq"], a2["result"], a2["digest"]) == (2, "stored", _digest(chain[1]))
    assert a2["digest"] != _b64(hashlib.sha256(zipped).digest())
    assert _payload(chain[1])["prev"] == a1["digest"]  # the same digest as the next prev


def test_no_acknowledgement_without_a_seq_or_a_registered_station_and_each_is_consumed(
    tmp_path, chain, station_id, station_key, mosquitto, monkeypatch
) -> None:
    _in_text("**When there is no acknowledgement**", "over HTTPS the same is **404**")
    registered = {station_id: load_station_jwk(station_key[0].parent / "station.jwk")}
    seen: list[str] = []  # what the warehouse looked at: received bodies, inflate attempts

    class Spy(Warehouse):
        def receive(self, station: str, body: bytes, via: str):
            seen.append(f"receive {station} {body[:12]!r}")
            return super().receive(station, body, via)

    real_inflate = reference.inflate

    def spy_inflate(body: bytes, encoding: str, *args):
        seen.append(f"inflate {body[:12]!r}")
        return real_inflate(body, encoding, *args)

    monkeypatch.setattr(reference, "inflate", spy_inflate)
    house = Spy(tmp_path / "warehouse.db", registered)
    house.start_mqtt("127.0.0.1", mosquitto.port)
    acks = _Acks(mosquitto.port)
    try:
        acks.publish(f"stations/{station_id}/batches/gzip", b"not gzip at all")
        acks.publish(f"stations/{station_id}/batches", b"not a JWS")
        acks.publish("stations/NOT-REGISTERED/batches", chain[0].encode())
        acks.publish(f"stations/{station_id}/batches", chain[0].encode())  # a good one, last
        wait_for(lambda: acks.seen, 15, "the good batch's acknowledgement")
        assert [(t, a["seq"]) for t, a in acks.seen] == [(f"stations/{station_id}/acks", 1)]
        assert len(seen) == 4, seen
        house.stop()  # the same client id and session again: anything not PUBACKed comes back
        seen.clear()
        house = Spy(tmp_path / "warehouse.db", registered)
        house.start_mqtt("127.0.0.1", mosquitto.port)
        acks.publish(f"stations/{station_id}/batches", chain[1].encode())
        wait_for(lambda: len(acks.seen) == 2, 15, "the second good batch's acknowledgement")
        assert seen == [f"receive {station_id} {chain[1].encode()[:12]!r}"], seen
    finally:
        acks.stop()
        house.stop()


def test_the_agent_publishes_where_the_warehouse_listens(tmp_path, station_id, station_key):
    """The default MQTT transport publishes gzip'd batches to …/batches/gzip (so a warehouse
    listening on …/batches alone would miss every one): the text says so."""
    config = make_config(
        tmp_path, station_id, station_key[0], [],
        [{"type": "mqtt", "host": "127.0.0.1", "port": 1}, http_transport(1)],
    )  # fmt: skip
    assert config.transports[0].compression == "gzip"
    _in_text("`{topic_prefix}/{station}/batches/gzip`")


def test_the_shipped_copy_of_the_contract_is_the_same_file() -> None:
    shipped = ROOT / "agent/share/docs/protocol.md"
    assert shipped.read_bytes() == (ROOT / "docs/protocol.md").read_bytes()
    assert Path(shipped).resolve() == (ROOT / "docs/protocol.md").resolve()
