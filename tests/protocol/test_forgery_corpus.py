"""A forgery corpus every verifier must refuse: the agent's (``station-agent verify``), the
reference warehouse's own (``warehouse/verify/verifier.py``) and, for JWS-level forgeries, joserfc.

Each forgery is a variant of a genuine batch, most of them signed with the station's real key,
so only the strictness of the check refuses them. The corpus is built here with hashlib, base64
and cryptography directly, not with the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jws as jose_jws
from joserfc.jwk import OKPKey

from agent.protocol.keys import generate_key, load_jwk, load_private_key
from agent.protocol.verify import StationKey, check_batch, verify_chain
from core.errors import VerificationError
from warehouse.reference import Warehouse
from warehouse.verify.verifier import RegisteredKey, check, check_chain

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


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Keys:
    d = tmp_path_factory.mktemp("keys")
    key_path, jwk_path = generate_key(d / "station")
    other_path, other_jwk = generate_key(d / "other")
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


def test_genuine_batches_pass_every_verifier(keys: Keys) -> None:
    token = genuine(keys)
    check_batch(token, StationKey.from_jwk(keys.jwk), STATION)
    check(token, RegisteredKey.from_jwk(keys.jwk), STATION)
    assert joserfc_accepts(token, keys)


def joserfc_accepts(token: str, keys: Keys) -> bool:
    """joserfc's verdict, plus the header rule of docs/protocol.md (a warehouse built on it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc warns that RFC 9864 prefers "Ed25519"
        try:
            obj = jose_jws.deserialize_compact(
                token, OKPKey.import_key(keys.jwk), algorithms=["EdDSA"]
            )
        except Exception:
            return False
    head = base64.urlsafe_b64decode(token.split(".")[0] + "==")
    return obj.headers() == {"alg": "EdDSA", "kid": keys.kid, "typ": "JOSE"} and head == header(
        keys.kid
    )


@pytest.fixture(scope="module")
def corpus(keys: Keys) -> dict[str, tuple[str, bool]]:
    return single_forgeries(keys)


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


def test_corpus_is_the_listed_one(corpus) -> None:
    assert list(corpus) == FORGERIES


@pytest.mark.parametrize("name", FORGERIES)
def test_every_verifier_refuses_each_forgery(keys: Keys, corpus, name: str) -> None:
    token, jose_applies = corpus[name]
    with pytest.raises(VerificationError):
        check_batch(token, StationKey.from_jwk(keys.jwk), STATION)
    with pytest.raises(VerificationError):
        check(token, RegisteredKey.from_jwk(keys.jwk), STATION)
    if jose_applies:
        assert not joserfc_accepts(token, keys), f"joserfc accepts {name!r}"


# A well-formed batch signed by a key the warehouse does not know may come from a new key whose
# rotation record is still on its way: 425 (sent again later), stored never (docs/protocol.md).
TOO_EARLY = {"wrong kid (another key, its own kid)"}


def test_warehouse_answers_400_to_each_forgery(keys: Keys, corpus, tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "wh.db", {STATION: RegisteredKey.from_jwk(keys.jwk)})
    try:
        for name, (token, _j) in corpus.items():
            status, message = warehouse.receive(STATION, token.encode(), "test")
            assert status == (425 if name in TOO_EARLY else 400), f"{name}: {status} {message}"
        assert warehouse.count(STATION) == (0, 0)
        assert warehouse.receive(STATION, genuine(keys).encode(), "test")[0] == 201
    finally:
        warehouse.stop()


def _sourced(tokens: list[str]) -> list[tuple[str, str]]:
    return [(f"token {i}", t) for i, t in enumerate(tokens)]


def chain_forgeries(keys: Keys) -> dict[str, list[str]]:
    one = genuine(keys, 1)
    two = genuine(keys, 2, digest(one))
    three = genuine(keys, 3, digest(two))
    return {
        "third names the first as prev": [one, two, genuine(keys, 3, digest(one))],
        "prev over re-encoded bytes": [one, genuine(keys, 2, digest(one + "\n"))],
        "prev of seq 1 re-signed onto seq 2's place": [one, genuine(keys, 2, digest(three))],
        "seq 2 missing": [one, three],
        "replay of seq 2 with other content": [one, two, genuine(keys, 2, digest(one), value="9")],
    }


CHAINS = [
    "third names the first as prev",
    "prev over re-encoded bytes",
    "prev of seq 1 re-signed onto seq 2's place",
    "seq 2 missing",
    "replay of seq 2 with other content",
]


@pytest.mark.parametrize("name", CHAINS)
def test_both_chain_checks_refuse_broken_chains(keys: Keys, name: str) -> None:
    tokens = chain_forgeries(keys)[name]
    agent_report = verify_chain(
        [(str(i), t) for i, t in enumerate(tokens)], StationKey.from_jwk(keys.jwk)
    )
    assert not agent_report.ok, name
    assert not check_chain(tokens, RegisteredKey.from_jwk(keys.jwk)).ok, name


def test_a_genuine_chain_passes_both_chain_checks(keys: Keys) -> None:
    one = genuine(keys, 1)
    two = genuine(keys, 2, digest(one))
    tokens = [one, two, genuine(keys, 3, digest(two))]
    assert verify_chain(
        [(str(i), t) for i, t in enumerate(tokens)], StationKey.from_jwk(keys.jwk)
    ).ok
    assert check_chain(tokens, RegisteredKey.from_jwk(keys.jwk)).ok


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    head=st.binary(max_size=120) | st.sampled_from([b'{"alg":"EdDSA"}', b"[]", b"[" * 5000]),
    body=st.binary(max_size=200) | st.sampled_from([b"{}", b"[" * 100_000, b'{"a":1,"a":2}']),
    sig=st.binary(max_size=70),
)
def test_the_warehouse_verifier_refuses_arbitrary_tokens_cleanly(keys: Keys, head, body, sig):
    token = f"{b64(head)}.{b64(body)}.{b64(sig)}"
    with pytest.raises(VerificationError):
        check(token, RegisteredKey.from_jwk(keys.jwk), STATION)
