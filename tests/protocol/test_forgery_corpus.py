"""A forgery corpus every verifier must refuse: the agent's (``station-agent verify``), the
reference warehouse's own (``warehouse/verify/verifier.py``) and, for JWS-level forgeries, joserfc.

Each forgery is a variant of a genuine batch, most of them signed with the station's real key,
so only the strictness of the check refuses them. The corpus (tests/helpers/forgery.py) is built
with hashlib, base64 and cryptography directly, not with the code under test.
"""

from __future__ import annotations

import base64
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jws as jose_jws
from joserfc.jwk import OKPKey

from agent.protocol.verify import StationKey, check_batch, verify_chain
from core.errors import VerificationError
from tests.helpers.forgery import (
    FORGERIES,
    STATION,
    TOO_EARLY,
    Keys,
    b64,
    digest,
    genuine,
    header,
    make_keys,
    single_forgeries,
)
from warehouse.reference import Warehouse
from warehouse.verify.verifier import RegisteredKey, check, check_chain


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Keys:
    return make_keys(tmp_path_factory.mktemp("keys"))


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
