"""The forgery corpus: genuine batches and variants of them that a strict verifier refuses
(tests/protocol/test_forgery_corpus.py runs every verifier on it; the warehouse tests feed it to
the intake). Built with hashlib, base64 and cryptography directly, not with the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol.keys import generate_key, load_jwk, load_private_key

STATION = "FORGE-01"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def other_spelling(text: str) -> str:
    """The same bytes in non-canonical base64url: flip a spare low bit of the last character."""
    spare = {2: 4, 3: 2}[len(text) % 4]  # unused low bits in the last character
    assert spare
    last = ALPHABET[ALPHABET.index(text[-1]) ^ 1]
    out = text[:-1] + last
    pad = "=" * (-len(text) % 4)
    assert base64.urlsafe_b64decode(out + pad) == base64.urlsafe_b64decode(text + pad)
    return out


def reading(value: str = "41.5", device: str = "stack") -> str:
    return (
        '{"device":"' + device + '","param":"SO2","value":' + value + ',"unit":"mg/Nm3",'
        '"time":"2026-11-28T03:00:00.004Z","status":"00"}'
    )


def payload(
    seq: int, prev: str | None, *, extra: str = "", value: str = "41.5", device: str = "stack"
) -> bytes:
    prev_json = "null" if prev is None else f'"{prev}"'
    return (
        f'{{"v":1,{extra}"station":"{STATION}","seq":{seq},"prev":{prev_json},'
        f'"sealed_at":"2026-11-28T03:00:10.002Z","readings":[{reading(value, device)}]}}'
    ).encode()


def header(kid: str) -> bytes:
    return f'{{"alg":"EdDSA","kid":"{kid}","typ":"JOSE"}}'.encode()


def sign(key: Ed25519PrivateKey, head: str, body: str) -> str:
    """Sign exactly these base64url texts (canonical or not) with ``key``."""
    return f"{head}.{body}.{b64(key.sign(f'{head}.{body}'.encode()))}"


def digest(jws: str) -> str:
    return b64(hashlib.sha256(jws.encode()).digest())


@dataclass
class Keys:
    private: Ed25519PrivateKey
    kid: str
    jwk: dict
    other: Ed25519PrivateKey
    other_kid: str


def make_keys(directory: Path) -> Keys:
    """The station's key (its kid computed here, RFC 7638) and another key, under ``directory``."""
    key_path, jwk_path = generate_key(directory / "station")
    other_path, other_jwk = generate_key(directory / "other")
    jwk = load_jwk(jwk_path)
    members = json.dumps({k: jwk[k] for k in ("crv", "kty", "x")}, separators=(",", ":"))
    kid = b64(hashlib.sha256(members.encode()).digest())
    assert kid == jwk["kid"]
    return Keys(
        load_private_key(key_path),
        kid,
        jwk,
        load_private_key(other_path),
        load_jwk(other_jwk)["kid"],
    )


def genuine(keys: Keys, seq: int = 1, prev: str | None = None, **kw: str) -> str:
    return sign(keys.private, b64(header(keys.kid)), b64(payload(seq, prev, **kw)))


def single_forgeries(keys: Keys) -> dict[str, tuple[str, bool]]:
    """name -> (token, whether joserfc plus the protocol's header check applies)."""
    k, kid = keys.private, keys.kid
    good = genuine(keys)
    h, p, s = good.split(".")
    # a signature containing "-" or "_" to respell in the standard alphabet
    n = 0
    while not any(c in (sig := genuine(keys, extra=f'"x{n}":0,').split(".")[2]) for c in "-_"):
        n += 1
    std = (
        genuine(keys, extra=f'"x{n}":0,').rsplit(".", 1)[0]
        + "."
        + sig.translate(str.maketrans("-_", "+/"))
    )
    hs_secret = json.dumps(keys.jwk).encode()
    hs_head = b64(json.dumps({"alg": "HS256", "kid": kid}).encode())
    hs_mac = hmac.new(hs_secret, f"{hs_head}.{p}".encode(), hashlib.sha256).digest()
    padded_body = payload(1, None)
    while len(padded_body) % 3 == 0:  # needs spare bits to respell: a longer device name
        padded_body = padded_body.replace(b'"device":"', b'"device":"x')
    assert len(header(kid)) % 3, "the fixed header leaves spare bits"
    return {
        "signature respelled, same bytes": (f"{h}.{p}.{other_spelling(s)}", True),
        "signature padded": (f"{good}==", True),
        "signature in standard base64": (std, True),
        "header respelled, same bytes, re-signed": (
            sign(k, other_spelling(h), p),
            False,  # joserfc decodes leniently; our header rule is about bytes, not text
        ),
        "payload respelled, same bytes, re-signed": (
            sign(k, h, other_spelling(b64(padded_body))),
            False,
        ),
        "header with an extra member": (
            sign(k, b64(header(kid)[:-1] + b',"x5u":"https://evil"}'), p),
            True,
        ),
        "header members reordered": (
            sign(k, b64(f'{{"kid":"{kid}","alg":"EdDSA","typ":"JOSE"}}'.encode()), p),
            True,
        ),
        "header with whitespace": (
            sign(k, b64(json.dumps({"alg": "EdDSA", "kid": kid, "typ": "JOSE"}).encode()), p),
            True,
        ),
        "header without typ": (sign(k, b64(f'{{"alg":"EdDSA","kid":"{kid}"}}'.encode()), p), True),
        "header with duplicated alg": (
            sign(k, b64(f'{{"alg":"none","alg":"EdDSA","kid":"{kid}","typ":"JOSE"}}'.encode()), p),
            True,
        ),
        "header with crit": (
            sign(k, b64(header(kid)[:-1] + b',"crit":["exp"],"exp":1}'), p),
            True,
        ),
        "payload with a duplicated key, re-signed": (
            sign(k, h, b64(payload(1, None, extra=f'"station":"OTHER-{STATION}",'))),
            False,  # joserfc does not parse payloads
        ),
        "payload with NaN, re-signed": (sign(k, h, b64(payload(1, None, value="NaN"))), False),
        "seq 1 with a prev, re-signed": (sign(k, h, b64(payload(1, "A" * 43))), False),
        "wrong kid (another key, its own kid)": (
            sign(keys.other, b64(header(keys.other_kid)), p),
            True,
        ),
        "station's kid, another key": (sign(keys.other, h, p), True),
        "payload altered": (f"{h}.{b64(payload(1, None, value='14.5'))}.{s}", True),
        "alg none": (b64(b'{"alg":"none"}') + f".{p}.", True),
        "alg HS256 with the public key as secret": (f"{hs_head}.{p}.{b64(hs_mac)}", True),
    }


FORGERIES = [
    "signature respelled, same bytes",
    "signature padded",
    "signature in standard base64",
    "header respelled, same bytes, re-signed",
    "payload respelled, same bytes, re-signed",
    "header with an extra member",
    "header members reordered",
    "header with whitespace",
    "header without typ",
    "header with duplicated alg",
    "header with crit",
    "payload with a duplicated key, re-signed",
    "payload with NaN, re-signed",
    "seq 1 with a prev, re-signed",
    "wrong kid (another key, its own kid)",
    "station's kid, another key",
    "payload altered",
    "alg none",
    "alg HS256 with the public key as secret",
]


# A well-formed batch signed by a key the warehouse does not know may come from a new key whose
# rotation record is still on its way: 425 (sent again later), stored never (docs/protocol.md).
TOO_EARLY = {"wrong kid (another key, its own kid)"}
