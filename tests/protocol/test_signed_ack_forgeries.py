"""The agent's check of a signed acknowledgement (``agent.protocol.signed_ack``) against a
forgery corpus and random input: only the warehouse's genuine statement about this station
passes; everything else is a ``VerificationError``, never another exception."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.protocol.signed_ack import AckKeys, check_ack
from core.errors import VerificationError
from warehouse.acks import AckKey

KEY = AckKey.generate()
STATION = "F-01"
DIGEST = "q0tV" + "A" * 39


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signed(header: bytes, payload: bytes, key: AckKey = KEY) -> str:
    signing_input = f"{_b64(header)}.{_b64(payload)}"
    return f"{signing_input}.{_b64(key.private.sign(signing_input.encode()))}"


def _header(alg: str = "Ed25519", kid: str | None = None) -> bytes:
    return json.dumps(
        {"alg": alg, "kid": kid or KEY.kid, "typ": "JOSE"}, separators=(",", ":")
    ).encode()


def _statement(**changes: object) -> bytes:
    data = {"v": 1, "kind": "ack", "station": STATION, "seq": 3, "digest": DIGEST,
            "result": "stored", "reason": ""}  # fmt: skip
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


@pytest.fixture
def keys(tmp_path) -> AckKeys:
    path = tmp_path / "wh.jwk"
    path.write_text(json.dumps(KEY.jwk))
    return AckKeys.load(path)


def test_the_genuine_ack_passes(keys):
    ack = check_ack(KEY.ack(STATION, 3, DIGEST, "stored")["jws"], keys, STATION)
    assert (ack.station, ack.seq, ack.digest, ack.result) == (STATION, 3, DIGEST, "stored")


genuine = _signed(_header(), _statement())
h, p, s = genuine.split(".")
FORGERIES = {
    "unsigned (no jws)": None,
    "not text": 42,
    "too long": genuine + "A" * 5000,
    "alg none": f"{_b64(_header('none'))}.{p}.",
    "alg HS256": _signed(_header("HS256"), _statement()),
    "alg EdDSA (not for acks)": _signed(_header("EdDSA"), _statement()),
    "header with a space": _signed(_header().replace(b",", b", "), _statement()),
    "another key": _signed(_header(kid=AckKey.generate().kid), _statement(), AckKey.generate()),
    "another key claiming the pinned kid": _signed(_header(), _statement(), AckKey.generate()),
    "payload altered": f"{h}.{_b64(_statement(result='rejected'))}.{s}",
    "signature stray bits": f"{h}.{p}.{s[:-1]}{'B' if s[-1] == 'A' else 'A'}",
    "padding": f"{h}.{p}.{s}==",
    "four parts": f"{h}.{p}.{s}.x",
    "another station (replayed)": _signed(_header(), _statement(station="F-02")),
    "kind batch": _signed(_header(), _statement(kind="readings")),
    "v 2": _signed(_header(), _statement(v=2)),
    "extra member": _signed(_header(), _statement(extra=1)),
    "member missing": _signed(_header(), _statement(reason=...)),
    "seq float": _signed(_header(), _statement(seq=3.0)),
    "seq 0": _signed(_header(), _statement(seq=0)),
    "seq bool": _signed(_header(), _statement(seq=True)),
    "digest short": _signed(_header(), _statement(digest="abc")),
    "unknown result": _signed(_header(), _statement(result="ok")),
    "duplicate member": _signed(_header(), _statement()[:-1] + b',"seq":4}'),
    "not JSON": _signed(_header(), b"stored"),
    "nested": _signed(_header(), b"[" * 10000 + b"]" * 10000),
    "nested within 4 KiB": _signed(_header(), b"[" * 1400 + b"]" * 1400),
}


@pytest.mark.parametrize("name", list(FORGERIES))
def test_a_forgery_is_refused(name, keys):
    with pytest.raises(VerificationError):
        check_ack(FORGERIES[name], keys, STATION)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))))
def test_random_text_is_a_verification_error(text):
    path_keys = AckKeys({KEY.kid: KEY.private.public_key()})
    with pytest.raises(VerificationError):
        check_ack(text, path_keys, STATION)


@pytest.mark.parametrize(
    "content, expected",
    [
        ("not json", "not JSON"),
        ('{"kty":"RSA","n":"x","e":"AQAB"}', "not an Ed25519"),
        ('{"keys":[]}', "1 to 16 keys"),
        (json.dumps({**KEY.jwk, "kid": "other"}), "not its RFC 7638 thumbprint"),
        ("[1]", "not a JSON object"),
        ("[" * 5000 + "]" * 5000, "not JSON"),
    ],
)
def test_an_ack_keys_file_that_is_not_keys_says_why(tmp_path, content, expected):
    path = tmp_path / "k.jwk"
    path.write_text(content)
    with pytest.raises(VerificationError, match=expected):
        AckKeys.load(path)
