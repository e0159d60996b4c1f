"""Transport compression: gzip'd bodies (HTTP Content-Encoding, MQTT .../batches/gzip) that the
warehouse inflates, within a limit, before verifying and storing the exact JWS; a cut in the
middle of a compressed body is a retry; a decompression bomb is refused."""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import tracemalloc
import warnings
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import paho.mqtt.client as mqtt
import pytest
from joserfc import jws as jose_jws
from joserfc.jwk import OKPKey
from paho.mqtt.enums import CallbackAPIVersion

from agent.protocol.keys import load_jwk, load_private_key
from agent.protocol.payload_v2 import build_payload_v2
from agent.protocol.signer import Signer
from agent.transports.https.transport import HttpsTransport, HttpsTransportConfig
from agent.transports.mqtt.transport import MqttTransport, MqttTransportConfig
from core.batch import SealedBatch
from core.outcomes import Ack, Outcome, Retry
from simulators.link import Link
from tests.helpers.station import wait_for
from warehouse.verify.inflate import InflateError, inflate

STATION = "TEST-01"


@pytest.fixture
def station_id() -> str:
    return STATION


T = 1_764_288_000_000


def _batches(station_key, n: int, readings: int = 500) -> list[SealedBatch]:
    signer = Signer(load_private_key(station_key[0]))
    out, prev = [], None
    for seq in range(1, n + 1):
        rows = [
            ("stack", f"P{i % 50:02d}", "mg/Nm3", T + (seq * 10 + i // 50) * 1000, i * 0.5, "00")
            for i in range(readings)
        ]
        jws = signer.sign(build_payload_v2(STATION, seq, prev, T, rows))
        prev = _digest(jws)
        out.append(SealedBatch(seq, jws, readings, T))
    return out


def _digest(jws: str) -> str:
    import base64

    return base64.urlsafe_b64encode(hashlib.sha256(jws.encode()).digest()).rstrip(b"=").decode()


class _Outcomes:
    def __init__(self) -> None:
        self.seen: list[tuple[int, Outcome]] = []
        self.lock = threading.Lock()

    def __call__(self, seq: int, outcome: Outcome) -> None:
        with self.lock:
            self.seen.append((seq, outcome))


def _transport(port: int, **extra) -> HttpsTransport:
    config = HttpsTransportConfig.model_validate(
        {"type": "https", "base_url": f"http://127.0.0.1:{port}", "allow_plain_http": True, **extra}
    )
    return HttpsTransport(config, STATION)


def test_gzip_bodies_are_stored_as_the_exact_jws_joserfc_verifies(warehouse, station_key):
    batches = _batches(station_key, 3)
    link = Link("127.0.0.1", warehouse.start_http())
    transport, outcomes = _transport(link.start()), _Outcomes()
    transport.start(outcomes)
    try:
        for batch in batches:
            transport.submit(batch)
        wait_for(lambda: len(outcomes.seen) == 3, 30, "three answers")
    finally:
        transport.stop()
        link.stop()
    assert sorted(outcomes.seen) == [(1, Ack()), (2, Ack()), (3, Ack())]  # any order
    assert warehouse.jws_list(STATION) == [b.jws for b in batches], "the exact JWS is stored"
    key = OKPKey.import_key(load_jwk(station_key[0].parent / "station.jwk"))
    for jws in warehouse.jws_list(STATION):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # joserfc warns that RFC 9864 prefers "Ed25519"
            assert (
                json.loads(jose_jws.deserialize_compact(jws, key, algorithms=["EdDSA"]).payload)[
                    "v"
                ]
                == 2
            )
    sent = sum(len(b.jws) for b in batches)
    assert link.bytes_up < sent / 3, f"{link.bytes_up} bytes on the wire for {sent} of JWS"


@pytest.mark.parametrize("fin", [False, True], ids=["reset", "short-body"])
def test_a_cut_in_the_middle_of_a_compressed_body_is_a_retry(warehouse, station_key, fin):
    (batch,) = _batches(station_key, 1, readings=2000)
    body = gzip.compress(batch.jws.encode(), 6, mtime=0)
    link = Link("127.0.0.1", warehouse.start_http())
    link.record = True
    port = link.start()
    link.cut_next(300 + len(body) // 2, fin=fin)  # past the headers, half the body
    transport, outcomes = _transport(port), _Outcomes()
    transport.start(outcomes)
    try:
        transport.submit(batch)
        wait_for(lambda: len(outcomes.seen) == 1, 30, "the first answer")
        assert isinstance(outcomes.seen[0][1], Retry), outcomes.seen
        transport.submit(batch)
        wait_for(lambda: len(outcomes.seen) == 2, 30, "the second answer")
    finally:
        transport.stop()
        link.stop()
    assert outcomes.seen[1] == (1, Ack())
    assert link.cut == 1
    assert warehouse.rejections() == [] and warehouse.jws_list(STATION) == [batch.jws]
    wait_for(lambda: len(link.uploads) == 2, 10, "both connections recorded")
    first, second = (u.split(b"\r\n\r\n", 1)[1] for u in link.uploads)
    assert second == body and body.startswith(first) and len(first) < len(body)


def _post(port: int, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{port}/stations/{STATION}/batches",
        content=body,
        headers={"Content-Type": "application/jose", **headers},
        timeout=60,
    )


def test_the_warehouse_refuses_a_decompression_bomb(warehouse, station_key):
    port = warehouse.start_http()
    bomb = gzip.compress(b"e" * (65 * 1024 * 1024), 9)  # 64 KiB that inflate past 64 MiB
    assert len(bomb) < 100_000
    answer = _post(port, bomb, **{"Content-Encoding": "gzip"})
    assert answer.status_code == 413 and "inflates past" in answer.text
    with pytest.raises(InflateError) as refused:
        inflate(gzip.compress(b"x" * 1001), "gzip", limit=1000)
    assert refused.value.too_large
    big = gzip.compress(b"\0" * (256 * 1024 * 1024), 1)  # 1 MiB on the wire, 256 MiB inflated
    tracemalloc.start()
    try:
        with pytest.raises(InflateError):
            inflate(big, "gzip", limit=1024 * 1024)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"inflating a bomb took {peak} bytes: it must stop at the limit"
    assert inflate(gzip.compress(b"x" * 1000), "gzip", limit=1000) == b"x" * 1000
    assert warehouse.count(STATION) == (0, 0)


@pytest.mark.parametrize(
    ("name", "encoding", "status"),
    [
        ("truncated", "gzip", 400),
        ("trailing bytes", "gzip", 400),
        ("two members", "gzip", 400),
        ("not gzip", "gzip", 400),
        ("zlib as deflate", "deflate", 201),
        ("unknown coding", "br", 415),
    ],
)
def test_a_body_that_does_not_inflate_is_refused_with_a_reason(
    warehouse, station_key, name, encoding, status
):
    (batch,) = _batches(station_key, 1, readings=50)
    jws = batch.jws.encode()
    body = {
        "truncated": gzip.compress(jws)[:-9],
        "trailing bytes": gzip.compress(jws) + b"junk",
        "two members": gzip.compress(jws) + gzip.compress(jws),
        "not gzip": jws,
        "zlib as deflate": zlib.compress(jws),
        "unknown coding": gzip.compress(jws),
    }[name]
    answer = _post(warehouse.start_http(), body, **{"Content-Encoding": encoding})
    assert answer.status_code == status, answer.text
    assert warehouse.count(STATION)[0] == (1 if status == 201 else 0)


def test_a_warehouse_that_takes_no_gzip_gets_identity_bodies(station_key):
    seen: list[str | None] = []

    class NoGzip(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.headers.get("Content-Encoding"))
            self.send_response(415 if self.headers.get("Content-Encoding") else 201)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), NoGzip)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    (batch,) = _batches(station_key, 1, readings=10)
    transport, outcomes = _transport(server.server_address[1]), _Outcomes()
    transport.start(outcomes)
    try:
        transport.submit(batch)
        wait_for(lambda: outcomes.seen, 30, "the first answer")
        transport.submit(batch)
        wait_for(lambda: len(outcomes.seen) == 2, 30, "the second answer")
    finally:
        transport.stop()
        server.shutdown()
    assert isinstance(outcomes.seen[0][1], Retry) and outcomes.seen[1] == (1, Ack())
    assert seen == ["gzip", None]


def _mqtt_transport(port: int, **extra) -> MqttTransport:
    config = MqttTransportConfig.model_validate(
        {"type": "mqtt", "host": "127.0.0.1", "port": port, "keepalive_s": 5, **extra}
    )
    return MqttTransport(config, STATION)


def test_mqtt_gzip_goes_to_its_own_topic_and_the_warehouse_acks_the_inflated_jws(
    mosquitto, warehouse, station_key
):
    batches = _batches(station_key, 2)
    seen: list[tuple[str, bytes]] = []
    ready = threading.Event()
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2)
    watcher.on_connect = lambda c, *a: c.subscribe("stations/#", qos=1)
    watcher.on_subscribe = lambda *a: ready.set()
    watcher.on_message = lambda c, u, msg: seen.append((msg.topic, msg.payload))
    watcher.connect("127.0.0.1", mosquitto.port)
    watcher.loop_start()
    assert ready.wait(10)
    warehouse.start_mqtt("127.0.0.1", mosquitto.port)
    transport, outcomes = _mqtt_transport(mosquitto.port), _Outcomes()
    transport.start(outcomes)
    try:
        for batch in batches:
            transport.submit(batch)
        wait_for(lambda: len(outcomes.seen) == 2, 30, "two warehouse acknowledgements")
    finally:
        transport.stop()
        watcher.loop_stop()
    assert sorted(outcomes.seen) == [(1, Ack()), (2, Ack())]
    assert warehouse.jws_list(STATION) == [b.jws for b in batches]
    sent = [p for t, p in seen if t == f"stations/{STATION}/batches/gzip"]
    assert [gzip.decompress(p).decode() for p in sent] == [b.jws for b in batches]
    assert not [t for t, _ in seen if t == f"stations/{STATION}/batches"], "nothing uncompressed"
    broker_acked = _mqtt_transport(mosquitto.port, ack="broker")
    assert broker_acked.topic == f"stations/{STATION}/batches", "broker acks: plain by default"
