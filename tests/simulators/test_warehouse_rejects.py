"""The reference warehouse refuses forged, replayed and malformed batches with a reason."""

from __future__ import annotations

import json

import httpx
import pytest

from agent.protocol.batch import build_payload
from agent.protocol.jws import b64url, b64url_decode, chain_digest
from agent.protocol.keys import generate_key, load_private_key
from agent.protocol.signer import Signer

ROWS = [("dev", "SO2", "mg/Nm3", 1_764_000_000_000, 41.5, "00")]


@pytest.fixture
def post(warehouse, station_id):
    port = warehouse.start_http()
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}")

    def _post(body: str | bytes, station: str = station_id) -> httpx.Response:
        return client.post(
            f"/stations/{station}/batches",
            content=body if isinstance(body, bytes) else body.encode(),
            headers={"Content-Type": "application/jose"},
        )

    yield _post
    client.close()


@pytest.fixture
def signer(station_key) -> Signer:
    return Signer(load_private_key(station_key[0]))


def _batch(signer: Signer, station: str, seq: int, prev: str | None, value: float = 41.5) -> str:
    rows = [(*ROWS[0][:4], value, "00")]
    return signer.sign(build_payload(station, seq, prev, 1_764_000_001_000, rows))


def test_accepts_then_409_for_identical_resend(post, signer, station_id, warehouse):
    token = _batch(signer, station_id, 1, None)
    assert post(token).status_code == 201
    again = post(token)
    assert again.status_code == 409 and "identical" in again.text
    assert warehouse.count(station_id) == (1, 1)


def test_modified_payload_is_rejected(post, signer, station_id):
    header, payload, sig = _batch(signer, station_id, 1, None).split(".")
    tampered = b64url(b64url_decode(payload).replace(b"41.5", b"14.5"))
    r = post(f"{header}.{tampered}.{sig}")
    assert r.status_code == 400 and "signature does not verify" in r.text


def test_unknown_key_is_answered_too_early_naming_the_kid_and_not_stored(
    post, station_id, tmp_path, warehouse
):
    """A kid the warehouse does not know may be a new key whose rotation record has not arrived
    yet: 425, which the agent retries (never quarantines); nothing is stored."""
    other = Signer(load_private_key(generate_key(tmp_path / "other")[0]))
    r = post(_batch(other, station_id, 1, None))
    assert r.status_code == 425 and f"kid {other.kid!r} is not a key of station" in r.text
    assert warehouse.count(station_id) == (0, 0) and warehouse.rejected_count() == 0


def test_forged_kid_with_wrong_key_is_rejected(post, signer, station_id, tmp_path):
    other = Signer(load_private_key(generate_key(tmp_path / "other")[0]))
    other.kid = signer.kid  # claims the station's kid, signs with another key
    r = post(_batch(other, station_id, 1, None))
    assert r.status_code == 400 and "signature does not verify" in r.text


def test_replayed_seq_with_different_content_is_rejected(post, signer, station_id, warehouse):
    assert post(_batch(signer, station_id, 1, None)).status_code == 201
    r = post(_batch(signer, station_id, 1, None, value=99.0))
    assert (
        r.status_code == 400 and "replay: seq 1 already received with different content" in r.text
    )
    assert any("replay" in reason for _s, reason in warehouse.rejections())


def test_broken_chain_is_rejected_and_gap_is_recorded_then_filled(
    post, signer, station_id, warehouse
):
    one = _batch(signer, station_id, 1, None)
    two = _batch(signer, station_id, 2, chain_digest(one))
    three = _batch(signer, station_id, 3, chain_digest(two))
    assert post(one).status_code == 201
    assert post(three).status_code == 201  # seq 2 missing: accepted, gap noted
    assert warehouse.gaps(station_id) == [(2, 2)]
    bad_two = _batch(signer, station_id, 2, chain_digest(one), value=7.0)
    r = post(bad_two)
    assert r.status_code == 400 and "chain broken" in r.text
    assert post(two).status_code == 201
    assert warehouse.gaps(station_id) == []


def test_station_mismatch_and_unknown_station(post, signer, station_id):
    token = _batch(signer, "SOMEONE-ELSE", 1, None)
    r = post(token)
    assert r.status_code == 400 and "does not match the sender" in r.text
    assert post(_batch(signer, station_id, 1, None), station="NOT-REGISTERED").status_code == 404


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "none"},
        {"alg": "HS256", "kid": "x"},
        {"alg": "ES256"},
    ],
)
def test_unsupported_alg_is_rejected(post, signer, station_id, header):
    _h, payload, sig = _batch(signer, station_id, 1, None).split(".")
    h = b64url(json.dumps(header).encode())
    r = post(f"{h}.{payload}.{sig if header['alg'] != 'none' else ''}")
    assert r.status_code == 400 and "unsupported alg" in r.text


def test_hs256_with_public_key_as_secret_is_rejected(post, signer, station_id, station_key):
    import hashlib
    import hmac

    _h, payload, _s = _batch(signer, station_id, 1, None).split(".")
    header = b64url(json.dumps({"alg": "HS256", "kid": signer.kid}).encode())
    secret = json.dumps(signer.jwk).encode()
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    r = post(f"{header}.{payload}.{b64url(mac)}")
    assert r.status_code == 400 and "unsupported alg 'HS256'" in r.text


@pytest.mark.parametrize(
    "body, reason",
    [
        ("not a jws", "expected 3 dot-separated parts"),
        ("a.b.c", "protected header is not base64url JSON"),
        (b"\xff\xfe.x.y", "not ASCII"),
    ],
)
def test_malformed_bodies_are_rejected(post, body, reason):
    r = post(body)
    assert r.status_code == 400 and reason in r.text


def test_malformed_payload_json_is_rejected(post, signer, station_id):
    token = signer.sign(b'{"v":1,"station":"%s","seq":1,"prev":null}' % station_id.encode())
    r = post(token)
    assert r.status_code == 400 and "malformed payload: sealed_at: missing" in r.text
    nan = signer.sign(build_payload(station_id, 1, None, 1, ROWS).replace(b"41.5", b"NaN"))
    r = post(nan)
    assert r.status_code == 400 and "malformed payload" in r.text


def test_upload_cut_short_is_not_received_and_not_rejected(post, signer, station_id, warehouse):
    import socket

    token = _batch(signer, station_id, 1, None).encode()
    port = warehouse._http.server_address[1]
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(
            f"POST /stations/{station_id}/batches HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/jose\r\nContent-Length: {len(token)}\r\n\r\n".encode()
            + token[: len(token) // 2]
        )
        s.shutdown(socket.SHUT_WR)  # the sender goes away mid-upload
        s.settimeout(30)
        assert s.recv(1) == b"", "the warehouse closes a cut upload without answering"
    assert warehouse.rejections() == []
    assert post(token).status_code == 201
