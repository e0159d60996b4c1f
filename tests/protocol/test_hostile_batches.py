"""Hostile batches: absurd nesting never reaches the recursion limit, and an outsider who sees
a batch first cannot make the warehouse refuse the genuine one (one batch, one byte string).

Forged tokens are built here with base64, hashlib and cryptography, not with the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import warnings

import httpx
import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jws as jose_jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from paho.mqtt.enums import CallbackAPIVersion

from agent.protocol.batch import build_payload
from agent.protocol.keys import load_jwk, load_private_key
from agent.protocol.signer import Signer
from agent.protocol.verify import check_batch
from agent.support.bounded import json_depth
from core.errors import VerificationError
from tests.helpers.station import wait_for
from warehouse.reference import load_station_jwk
from warehouse.verify.verifier import RegisteredKey, check, nesting

ROWS = [("dev", "SO2", "mg/Nm3", 1_764_000_000_000, 41.5, "00")]
L = 2**252 + 27742317777372353535851937790883648493  # the order of the Ed25519 base point
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def digest(jws: str) -> str:
    return b64(hashlib.sha256(jws.encode()).digest())


@pytest.fixture
def signer(station_key) -> Signer:
    return Signer(load_private_key(station_key[0]))


def batch(signer: Signer, station: str, seq: int, prev: str | None) -> str:
    return signer.sign(build_payload(station, seq, prev, 1_764_000_001_000, ROWS))


def deep_token(signer: Signer, part: str, depth: int = 5000) -> str:
    """A token with a ``depth``-deep JSON header or payload, signed with the station's key."""
    deep = b"[" * depth + b"]" * depth
    fixed = f'{{"alg":"EdDSA","kid":"{signer.kid}","typ":"JOSE"}}'.encode()
    head = b64(deep if part == "header" else fixed)
    body = b64(deep if part == "payload" else b"{}")
    key = signer._key  # the test plays the station: it holds the key
    return f"{head}.{body}.{b64(key.sign(f'{head}.{body}'.encode()))}"


def outsider_variants(token: str) -> dict[str, str]:
    """What someone without the key can make of a genuine batch: the same signed content in
    other bytes."""
    head, body, sig = token.split(".")
    raw = unb64(sig)
    s = int.from_bytes(raw[32:], "little")
    malleated = b64(raw[:32] + (s + L).to_bytes(32, "little"))
    spare_bit = ALPHABET[ALPHABET.index(sig[-1]) ^ 1]
    variants = {
        "signature respelled (spare low bit)": f"{head}.{body}.{sig[:-1]}{spare_bit}",
        "signature padded": f"{token}==",
        "trailing newline": token + "\n",
        "leading space": " " + token,
        "CRLF": token + "\r\n",
        "standard base64 alphabet": token.translate(str.maketrans("-_", "+/")),
        "signature S + L (malleated)": f"{head}.{body}.{malleated}",
    }
    # a token without "-" or "_" has no standard-alphabet spelling of its own
    return {name: v for name, v in variants.items() if v != token}


@pytest.mark.parametrize("part", ["header", "payload"])
def test_deep_nesting_is_refused_by_both_verifiers(signer, station_key, part):
    token = deep_token(signer, part)
    with pytest.raises(VerificationError):
        check_batch(token, station_key[1])
    registered = load_station_jwk(station_key[0].parent / "station.jwk")
    with pytest.raises(VerificationError):
        check(token, registered)


def test_deep_payload_is_refused_by_a_depth_count_not_the_recursion_limit(signer, station_key):
    """The refusal names the depth (it comes from counting brackets before parsing), even
    200,000 levels deep."""
    registered = load_station_jwk(station_key[0].parent / "station.jwk")
    token = deep_token(signer, "payload", 200_000)
    for verify in (lambda: check_batch(token, station_key[1]), lambda: check(token, registered)):
        with pytest.raises(VerificationError, match="nested deeper"):
            verify()


def test_verify_command_reports_a_deep_batch_without_a_traceback(signer, station_key, tmp_path):
    files = []
    for part in ("header", "payload"):
        path = tmp_path / f"{part}.jws"
        path.write_text(deep_token(signer, part) + "\n")
        files.append(str(path))
    jwk = station_key[0].parent / "station.jwk"
    run = subprocess.run(
        [sys.executable, "-m", "agent.cli", "verify", "--jwk", str(jwk), *files],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and "RecursionError" not in run.stdout + run.stderr
    assert run.stdout.count("forged or malformed") == 2, run.stdout


def test_warehouse_http_answers_a_deep_batch_and_goes_on(warehouse, signer, station_id):
    port = warehouse.start_http()
    url = f"http://127.0.0.1:{port}/stations/{station_id}/batches"
    headers = {"Content-Type": "application/jose"}
    for part in ("header", "payload"):
        answer = httpx.post(url, content=deep_token(signer, part).encode(), headers=headers)
        assert answer.status_code == 400, answer.text
    assert (
        httpx.post(url, content=batch(signer, station_id, 1, None), headers=headers).status_code
        == 201
    )


def test_warehouse_mqtt_thread_survives_a_deep_batch(warehouse, signer, station_id, mosquitto):
    warehouse.start_mqtt("127.0.0.1", mosquitto.port)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hostile-{station_id}")
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    try:
        topic = f"stations/{station_id}/batches"
        for body in (deep_token(signer, "header"), deep_token(signer, "payload", 100_000)):
            client.publish(topic, body, qos=1).wait_for_publish(10)
        client.publish(topic, batch(signer, station_id, 1, None), qos=1).wait_for_publish(10)
        wait_for(lambda: warehouse.count(station_id)[0] == 1, 20, "the genuine batch stored")
        assert len(warehouse.rejections()) == 2
    finally:
        client.loop_stop()
        client.disconnect()


def test_a_variant_posted_first_does_not_make_the_warehouse_refuse_the_genuine_batch(
    warehouse, signer, station_id
):
    """The race of issue 10: an MQTT subscriber sees batch k and posts variants of it to the
    warehouse before the agent's HTTPS delivery arrives. Each variant is refused; the genuine
    k and k+1 are then stored, the chain whole."""
    port = warehouse.start_http()
    url = f"http://127.0.0.1:{port}/stations/{station_id}/batches"
    headers = {"Content-Type": "application/jose"}
    one = batch(signer, station_id, 1, None)
    two = batch(signer, station_id, 2, digest(one))
    three = batch(signer, station_id, 3, digest(two))
    assert httpx.post(url, content=one, headers=headers).status_code == 201
    for name, variant in outsider_variants(two).items():
        answer = httpx.post(url, content=variant.encode(), headers=headers)
        assert answer.status_code == 400, f"{name}: {answer.status_code} {answer.text}"
    replayed = httpx.post(url, content=three, headers=headers)  # k+1 seen and posted first too
    assert replayed.status_code == 201
    assert httpx.post(url, content=two, headers=headers).status_code == 201
    assert warehouse.jws_list(station_id) == [one, two, three]
    assert warehouse.gaps(station_id) == []


def test_outsider_variants_are_refused_by_every_verifier(signer, station_key, station_id):
    token = batch(signer, station_id, 1, None)
    registered: RegisteredKey = load_station_jwk(station_key[0].parent / "station.jwk")
    jose_key = OKPKey.import_key(load_jwk(station_key[0].parent / "station.jwk"))
    for variant in outsider_variants(token).values():
        with pytest.raises(VerificationError):
            check_batch(variant, station_key[1])
        with pytest.raises(VerificationError):
            check(variant, registered)
        with warnings.catch_warnings(), pytest.raises(JoseError):  # the reference agrees
            warnings.simplefilter("ignore")  # joserfc: RFC 9864 prefers "Ed25519"
            jose_jws.deserialize_compact(variant, jose_key, algorithms=["EdDSA"])


def _depth_of(value: object) -> int:
    """The oracle: nesting of a Python value, recursively (fine for the small values drawn)."""
    if isinstance(value, dict):
        return 1 + max((_depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth_of(v) for v in value), default=0)
    return 0


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n', max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(value=_JSON, ascii_only=st.booleans())
def test_both_depth_counts_agree_with_the_parsed_value(value, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert json_depth(text) == _depth_of(value)
    assert nesting(text.encode()) == _depth_of(value)
