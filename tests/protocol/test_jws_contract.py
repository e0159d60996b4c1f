"""agent/protocol/jws.py, each rule and each refusal message pinned, against oracles of its own
(base64, hashlib, json, cryptography directly). Written to kill the mutants mutmut found alive
(docs/testing.md, "Mutation testing"): every check must matter and every message must say
exactly what is wrong.
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from agent.protocol.jws import (
    b64url,
    b64url_decode,
    chain_digest,
    key_from_jwk,
    parse_compact,
    public_jwk,
    sign_compact,
    verify_compact,
)
from core.errors import VerificationError

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
RAW = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def header(kid: object, **extra: object) -> str:
    return json.dumps({"alg": "EdDSA", "kid": kid, "typ": "JOSE", **extra}, separators=(",", ":"))


def token(header_text: str | bytes, payload: bytes = b'{"seq":1}', key=KEY) -> str:
    h = header_text.encode() if isinstance(header_text, str) else header_text
    signing_input = f"{b64(h)}.{b64(payload)}"
    return f"{signing_input}.{b64(key.sign(signing_input.encode()))}"


@given(st.binary(max_size=64))
def test_b64url_is_base64url_without_padding(data):
    assert b64url(data) == b64(data)
    assert b64url_decode(b64(data)) == data


def test_b64url_keeps_a_trailing_x():
    """Only '=' is stripped (bytes whose encoding ends in 'X')."""
    assert b64url(b"\x00\x00\x17") == "AAAX" == b64(b"\x00\x00\x17")


@pytest.mark.parametrize("text", ["ab+c", "ab/c", "ab=c", "ab c", "A", "AAAAA", "AAAAAAAAA"])
def test_b64url_decode_refuses_other_characters_and_impossible_lengths(text):
    with pytest.raises(ValueError) as err:
        b64url_decode(text)
    assert str(err.value) == "not base64url"


@pytest.mark.parametrize("text", [b"", b"AAAA", None, 5])
def test_b64url_decode_refuses_what_is_not_text(text):
    with pytest.raises(ValueError) as err:
        b64url_decode(text)
    assert str(err.value) == "not base64url"


def test_b64url_decode_refuses_a_second_spelling():
    with pytest.raises(ValueError) as err:
        b64url_decode("AB")  # canonical is "AA": the low bits of the last character are stray
    assert str(err.value) == "not canonical base64url (stray bits in the last character)"


def test_public_jwk_is_the_rfc_8037_key_with_its_rfc_7638_thumbprint():
    x = b64(RAW)
    canonical = '{"crv":"Ed25519","kty":"OKP","x":"' + x + '"}'
    kid = b64(hashlib.sha256(canonical.encode()).digest())
    assert public_jwk(KEY.public_key()) == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": x,
        "kid": kid,
        "use": "sig",
    }


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "RSA", "crv": "Ed25519", "x": b64(RAW)},
        {"kty": "OKP", "crv": "X25519", "x": b64(RAW)},
        {"kty": "OKP", "crv": "Ed25519"},
        {"crv": "Ed25519", "x": b64(RAW)},
    ],
)
def test_key_from_jwk_refuses_what_is_not_an_ed25519_key(jwk):
    with pytest.raises(VerificationError) as err:
        key_from_jwk(jwk)
    assert str(err.value) == "JWK is not an Ed25519 OKP key (kty OKP, crv Ed25519, x)"


@pytest.mark.parametrize("x", [b64(RAW[:31]), b64(RAW) + "=", "A"])
def test_key_from_jwk_refuses_a_bad_x(x):
    with pytest.raises(VerificationError) as err:
        key_from_jwk({"kty": "OKP", "crv": "Ed25519", "x": x})
    assert str(err.value) == "JWK 'x' is not a 32-byte base64url Ed25519 key"


def test_key_from_jwk_loads_the_key():
    key = key_from_jwk({"kty": "OKP", "crv": "Ed25519", "x": b64(RAW)})
    assert key.public_bytes(Encoding.Raw, PublicFormat.Raw) == RAW


def test_sign_compact_is_the_rfc_7515_compact_form():
    jws = sign_compact(b'{"seq":1}', KEY, "K", "EdDSA")
    assert jws == token(header("K"))  # Ed25519 is deterministic
    v3_header = json.dumps({"alg": "Ed25519", "kid": "K", "typ": "JOSE"}, separators=(",", ":"))
    assert sign_compact(b'{"seq":1}', KEY, "K") == token(v3_header)  # RFC 9864 by default


def test_parse_compact_takes_bytes_and_refuses_any_other_spelling():
    """One batch, one byte string: bytes are taken, surrounding whitespace is not stripped."""
    jws = token(header("K"))
    for other in (f" {jws}\n", f"{jws}\r\n".encode()):
        with pytest.raises(VerificationError):
            parse_compact(other)
    for form in (jws.encode(), jws):
        parsed = parse_compact(form)
        assert parsed.header == {"alg": "EdDSA", "kid": "K", "typ": "JOSE"}
        assert parsed.header_bytes == header("K").encode()
        assert parsed.payload == b'{"seq":1}'
        assert parsed.signing_input == jws.rsplit(".", 1)[0].encode()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("a.b\u00e9.c".encode(), "malformed JWS: not ASCII"),
        ("a.b", "malformed JWS: expected 3 dot-separated parts, got 2"),
        ("a.b.c.d", "malformed JWS: expected 3 dot-separated parts, got 4"),
        (f"{b64(b'not json')}.e30.AAAA", "malformed JWS: protected header is not base64url JSON"),
        (f"{b64(b'[1]')}.e30.AAAA", "malformed JWS: protected header is not a JSON object"),
        (f"{b64(b'{}')}.e30+.AAAA", "malformed JWS: payload or signature is not base64url"),
        (f"{b64(b'{}')}.e30.AAA+", "malformed JWS: payload or signature is not base64url"),
    ],
)
def test_parse_compact_says_what_is_malformed(bad, message):
    with pytest.raises(VerificationError) as err:
        parse_compact(bad)
    assert str(err.value) == message


def refusal(jws: str | bytes, kid: str | None = "K") -> str:
    with pytest.raises(VerificationError) as err:
        verify_compact(jws, KEY.public_key(), kid)
    return str(err.value)


def test_verify_compact_accepts_the_genuine_token_with_or_without_kid():
    jws = token(header("K"))
    assert verify_compact(jws, KEY.public_key(), "K").payload == b'{"seq":1}'
    assert verify_compact(jws.encode(), KEY.public_key()).payload == b'{"seq":1}'


def test_verify_compact_refuses_other_algorithms():
    h = json.dumps({"alg": "none", "kid": "K", "typ": "JOSE"}, separators=(",", ":"))
    assert refusal(token(h)) == (
        "unsupported alg 'none': only Ed25519 (or EdDSA before payload v3) is accepted"
    )


def test_verify_compact_refuses_crit():
    assert refusal(token(header("K", crit=["b64"]))) == "unsupported 'crit' header parameter"


def test_verify_compact_refuses_another_kid_even_signed_with_the_key():
    assert refusal(token(header("other"))) == (
        "kid 'other' is not the station's registered key 'K'"
    )


def test_verify_compact_refuses_a_header_spelled_otherwise():
    expected = 'protected header is not exactly {"alg":"EdDSA","kid":"K","typ":"JOSE"}'
    assert refusal(token(header("K").replace(",", ", ")), kid=None) == expected
    assert refusal(token(header(7)), kid=None) == (
        'protected header is not exactly {"alg":"EdDSA","kid":"<kid>","typ":"JOSE"}'
    )


def test_verify_compact_refuses_another_key():
    other = Ed25519PrivateKey.from_private_bytes(bytes(32))
    assert refusal(token(header("K"), key=other)) == (
        "signature does not verify: payload altered or wrong key"
    )


def test_chain_digest_is_sha256_of_the_token_bytes():
    jws = token(header("K"))
    expected = b64(hashlib.sha256(jws.encode()).digest())
    assert chain_digest(jws) == chain_digest(jws.encode()) == expected
