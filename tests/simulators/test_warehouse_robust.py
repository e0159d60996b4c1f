"""The reference warehouse never falls over: every malformed request is answered, connections
time out and are capped, the store failing is answered 500, the MQTT receiving thread survives
any message, refusals are counted but kept only as a bounded sample, the admin endpoint is off.

Requests are written byte by byte on raw sockets, so nothing in a client library tidies them.
"""

from __future__ import annotations

import socket
import ssl

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.protocol.batch import build_payload
from agent.protocol.keys import load_private_key
from agent.protocol.signer import Signer
from tests.helpers.station import wait_for
from warehouse.reference import KEEP_REJECTIONS, MAX_BODY, SAMPLE_BODIES, SAMPLE_BYTES

ROWS = [("dev", "SO2", "mg/Nm3", 1_764_000_000_000, 41.5, "00")]


@pytest.fixture
def genuine(station_key, station_id):
    signer = Signer(load_private_key(station_key[0]))
    return signer.sign(build_payload(station_id, 1, None, 1_764_000_001_000, ROWS)).encode()


def exchange(port: int, request: bytes, timeout: float = 20.0) -> bytes:
    """Send raw bytes, read until the server closes or answers one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer[:200]
    return int(answer.split(b" ", 2)[1])


def post_head(station: str, length: str | None, extra: str = "") -> bytes:
    lines = [f"POST /stations/{station}/batches HTTP/1.1", "Host: x"]
    lines.append("Content-Type: application/jose")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


@pytest.mark.parametrize(
    ("length", "extra", "expected"),
    [
        ("-1", "", 400),
        ("abc", "", 400),
        ("1e3", "", 400),
        (" ", "", 400),
        ("12", "Content-Length: 13\r\n", 400),
        (None, "Transfer-Encoding: chunked\r\n", 411),
        (str(MAX_BODY + 1), "", 413),
    ],
)
def test_bad_content_length_is_answered_not_dropped(
    warehouse, station_id, genuine, length, extra, expected
):
    port = warehouse.start_http(timeout_s=10)
    answer = exchange(port, post_head(station_id, length, extra) + b"x" * 20)
    assert status_of(answer) == expected, answer
    assert warehouse.received == 0
    ok = httpx.post(
        f"http://127.0.0.1:{port}/stations/{station_id}/batches",
        content=genuine,
        headers={"Content-Type": "application/jose"},
    )
    assert ok.status_code == 201


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST\r\n\r\n",
        b"\x16\x03\x01junk\r\n\r\n",
    ],
)
def test_malformed_requests_are_answered(warehouse, request_bytes):
    port = warehouse.start_http(timeout_s=10)
    assert 400 <= status_of(exchange(port, request_bytes)) < 600


def test_an_idle_connection_is_closed_after_the_timeout(warehouse):
    port = warehouse.start_http(timeout_s=0.5)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"POST /stations/x/batches HTTP/1.1\r\n")  # and then nothing
        assert s.recv(100) == b""  # closed by the server (the client's own timeout is 30 s)


def test_connections_are_capped_and_served_again_when_freed(warehouse, station_id, genuine):
    port = warehouse.start_http(timeout_s=60, max_connections=3)
    idle = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(3)]
    try:
        wait_for(lambda: status_of(exchange(port, b"GARBAGE\r\n\r\n")) == 503, 20, "a 503")
    finally:
        for s in idle:
            s.close()
    url = f"http://127.0.0.1:{port}/stations/{station_id}/batches"
    headers = {"Content-Type": "application/jose"}
    wait_for(
        lambda: httpx.post(url, content=genuine, headers=headers).status_code == 201,
        30,
        "a slot freed",
    )


def test_a_stalled_tls_handshake_does_not_block_other_clients(
    warehouse, station_id, genuine, tls_files
):
    port = warehouse.start_http(cert=tls_files.server_cert, key=tls_files.server_key, timeout_s=60)
    stalled = socket.create_connection(("127.0.0.1", port), timeout=30)  # never says hello
    try:
        ctx = ssl.create_default_context(cafile=str(tls_files.ca))
        answer = httpx.post(
            f"https://localhost:{port}/stations/{station_id}/batches",
            content=genuine,
            headers={"Content-Type": "application/jose"},
            verify=ctx,
            timeout=20,
        )
        assert answer.status_code == 201
    finally:
        stalled.close()


def test_a_failing_store_is_answered_500_and_serving_goes_on(warehouse, station_id, genuine):
    port = warehouse.start_http(timeout_s=10)
    url = f"http://127.0.0.1:{port}/stations/{station_id}/batches"
    headers = {"Content-Type": "application/jose"}
    warehouse._db.execute("PRAGMA query_only = 1")  # the store refuses every write
    answer = httpx.post(url, content=genuine, headers=headers)
    assert answer.status_code == 500 and "warehouse error" in answer.text
    warehouse._db.execute("PRAGMA query_only = 0")
    assert httpx.post(url, content=genuine, headers=headers).status_code == 201


def test_the_mqtt_receiving_thread_survives_any_message(warehouse, station_id, genuine, mosquitto):
    warehouse.start_mqtt("127.0.0.1", mosquitto.port)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"junk-{station_id}")
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    topic = f"stations/{station_id}/batches"
    try:
        warehouse._db.execute("PRAGMA query_only = 1")  # every store fails with an exception
        client.publish(topic, genuine, qos=1).wait_for_publish(10)
        wait_for(lambda: warehouse.errors >= 1, 20, "the failing store to be noticed")
        warehouse._db.execute("PRAGMA query_only = 0")
        for junk in (b"", b"\xff\xfe", b"a.b.c", b"[" * 100_000, b"..", genuine + b"\n"):
            client.publish(topic, junk, qos=1).wait_for_publish(10)
        client.publish("stations//batches", genuine, qos=1).wait_for_publish(10)
        client.publish(topic, genuine, qos=1).wait_for_publish(10)  # the agent's re-send
        wait_for(lambda: warehouse.count(station_id)[0] == 1, 20, "the genuine batch stored")
    finally:
        client.loop_stop()
        client.disconnect()


def test_refusals_are_counted_and_kept_only_as_a_bounded_sample(warehouse, station_id):
    junk = b"x" * 50_000
    total = KEEP_REJECTIONS + 50
    for _ in range(total):
        assert warehouse.receive(station_id, junk, "test")[0] == 400
    assert warehouse.rejected_count() == total
    assert len(warehouse.rejections()) == KEEP_REJECTIONS
    bodies = [
        r[0] for r in warehouse._db.execute("SELECT body FROM rejections WHERE body IS NOT NULL")
    ]
    assert len(bodies) == SAMPLE_BODIES
    assert all(len(b) <= SAMPLE_BYTES for b in bodies)


def test_the_admin_endpoint_is_off_unless_asked_for(warehouse):
    port = warehouse.start_http(timeout_s=10)
    url = f"http://127.0.0.1:{port}/_admin/fault"
    assert httpx.post(url, content=b"500").status_code == 404
    assert warehouse.fault is None
    warehouse.admin = True
    assert httpx.post(url, content=b"500").status_code == 200
    assert warehouse.fault == "500"
